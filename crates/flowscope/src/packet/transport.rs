//! Transport headers: TCP (RFC 9293), UDP (RFC 768), ICMP (RFC 792), ICMPv6 (RFC 4443)
//! and the SCTP common header (RFC 9260).

use super::{
    be16, be32, clamp_u32, header_at, ip, DecodeError, DecodeErrorKind, IcmpHeader, Layer,
    TcpFlags, TcpHeader, Transport, UdpHeader, Upper,
};

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const PROTO_SCTP: u8 = 132;

/// Where a transport header and its payload sit: `captured` bytes of the `wire`-byte IP
/// payload starting at `off` are present in the frame.
#[derive(Copy, Clone, Debug)]
pub(super) struct Span {
    pub(super) off: usize,
    pub(super) captured: usize,
    pub(super) wire: usize,
    /// The datagram is fragmented (this is its first fragment).
    pub(super) fragmented: bool,
}

/// Decode the transport header of protocol `proto` at `span`.
#[inline(always)]
pub(super) fn decode(frame: &[u8], proto: u8, v6: bool, span: Span) -> Result<Upper, DecodeError> {
    let Span { off, captured, wire, fragmented } = span;
    // Confine reads to the IP payload so padding after the datagram is never parsed.
    let l4 = frame.get(..off + captured).unwrap_or(frame);
    if fragmented && wire < min_header_len(proto, frame, off) {
        // A first fragment too short to hold the whole transport header (the "tiny
        // fragment" pattern): only reassembly can key it.
        return Ok(ip::opaque_payload(off, captured, wire));
    }
    let upper = match proto {
        PROTO_TCP => {
            let t = header_at::<20>(l4, off, Layer::Tcp)?;
            let data_offset = t[12] >> 4;
            let hlen = usize::from(data_offset) * 4;
            if data_offset < 5 || hlen > wire {
                return Err(DecodeError::new(
                    Layer::Tcp,
                    DecodeErrorKind::BadDataOffset(data_offset),
                ));
            }
            let tcp = Transport::Tcp(tcp_header(t, hlen, off));
            // Options cut by snaplen still leave the fixed header usable.
            with_payload(tcp, off, hlen, captured, wire)
        }
        PROTO_UDP => {
            let u = header_at::<8>(l4, off, Layer::Udp)?;
            let length = be16(u[4], u[5]);
            let len = usize::from(length);
            // The first fragment of a datagram holds only part of what the length covers.
            if len < 8 || (len > wire && !fragmented) {
                return Err(DecodeError::new(Layer::Udp, DecodeErrorKind::BadLength(length)));
            }
            let len = len.min(wire);
            let udp = Transport::Udp(UdpHeader {
                src_port: be16(u[0], u[1]),
                dst_port: be16(u[2], u[3]),
                length,
            });
            with_payload(udp, off, 8, captured.min(len), len)
        }
        PROTO_ICMP | PROTO_ICMPV6 if (proto == PROTO_ICMPV6) == v6 => {
            let c = header_at::<8>(l4, off, Layer::Icmp)?;
            let icmp = IcmpHeader {
                v6,
                ty: c[0],
                code: c[1],
                rest: [c[4], c[5], c[6], c[7]],
                offset: clamp_u32(off),
                end: clamp_u32(off + captured),
            };
            with_payload(Transport::Icmp(icmp), off, 8, captured, wire)
        }
        PROTO_SCTP => {
            let s = header_at::<12>(l4, off, Layer::Sctp)?;
            let sctp = Transport::Sctp { src_port: be16(s[0], s[1]), dst_port: be16(s[2], s[3]) };
            with_payload(sctp, off, 12, captured, wire)
        }
        _ => Upper { transport: Transport::Other, ..ip::opaque_payload(off, captured, wire) },
    };
    Ok(upper)
}

/// The TCP header whose fixed part is `t`, at `off` in the frame, `hlen` bytes long
/// (its data offset, checked by the caller).
#[inline(always)]
pub(super) fn tcp_header(t: &[u8; 20], hlen: usize, off: usize) -> TcpHeader {
    TcpHeader {
        src_port: be16(t[0], t[1]),
        dst_port: be16(t[2], t[3]),
        seq: be32([t[4], t[5], t[6], t[7]]),
        ack: be32([t[8], t[9], t[10], t[11]]),
        flags: TcpFlags(be16(t[12], t[13]) & 0x01ff),
        window: be16(t[14], t[15]),
        header_len: hlen as u8,
        offset: clamp_u32(off),
    }
}

/// The payload after a transport header of `hlen` bytes.
#[inline(always)]
pub(super) fn with_payload(
    transport: Transport,
    off: usize,
    hlen: usize,
    captured: usize,
    wire: usize,
) -> Upper {
    Upper {
        transport,
        payload_offset: clamp_u32(off + hlen.min(captured)),
        payload_len: clamp_u32(captured.saturating_sub(hlen)),
        payload_wire_len: clamp_u32(wire.saturating_sub(hlen)),
        truncated: captured < wire,
    }
}

/// The bytes a transport header needs, as far as they can be known from the frame (a TCP
/// header's own data offset, when that byte was captured).
fn min_header_len(proto: u8, frame: &[u8], off: usize) -> usize {
    match proto {
        PROTO_TCP => frame.get(off + 12).map_or(20, |b| usize::from(b >> 4) * 4).max(20),
        PROTO_UDP | PROTO_ICMP | PROTO_ICMPV6 => 8,
        PROTO_SCTP => 12,
        _ => 0,
    }
}
