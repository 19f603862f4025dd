//! Transport headers: TCP (RFC 9293), UDP (RFC 768), ICMP (RFC 792), ICMPv6 (RFC 4443)
//! and the SCTP common header (RFC 9260).

use super::{
    be16, be32, clamp_u32, header_at, ip, DecodeError, DecodeErrorKind, Headers, IcmpHeader, Layer,
    TcpFlags, TcpHeader, Transport, UdpHeader,
};

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const PROTO_SCTP: u8 = 132;

/// Decode the transport header at `off`; `captured` bytes of the `wire`-byte IP payload
/// are present in the frame.
#[inline(always)]
pub(super) fn decode(
    frame: &[u8],
    proto: u8,
    v6: bool,
    off: usize,
    captured: usize,
    wire: usize,
    fragmented: bool,
    h: &mut Headers,
) -> Result<(), DecodeError> {
    // Confine reads to the IP payload so padding after the datagram is never parsed.
    let l4 = frame.get(..off + captured).unwrap_or(frame);
    match proto {
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
            h.transport = Transport::Tcp(TcpHeader {
                src_port: be16(t[0], t[1]),
                dst_port: be16(t[2], t[3]),
                seq: be32([t[4], t[5], t[6], t[7]]),
                ack: be32([t[8], t[9], t[10], t[11]]),
                flags: TcpFlags(be16(t[12], t[13]) & 0x01ff),
                window: be16(t[14], t[15]),
                header_len: hlen as u8,
                offset: clamp_u32(off),
            });
            // Options cut by snaplen still leave the fixed header usable.
            set_payload(h, off, hlen, captured, wire);
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
            h.transport = Transport::Udp(UdpHeader {
                src_port: be16(u[0], u[1]),
                dst_port: be16(u[2], u[3]),
                length,
            });
            set_payload(h, off, 8, captured.min(len), len);
        }
        PROTO_ICMP | PROTO_ICMPV6 if (proto == PROTO_ICMPV6) == v6 => {
            let c = header_at::<8>(l4, off, Layer::Icmp)?;
            let mut icmp = IcmpHeader {
                v6,
                ty: c[0],
                code: c[1],
                rest: [c[4], c[5], c[6], c[7]],
                inner: None,
            };
            if icmp.is_error() {
                icmp.inner = ip::quoted_tuple(frame, off + 8, off + captured);
            }
            h.transport = Transport::Icmp(icmp);
            set_payload(h, off, 8, captured, wire);
        }
        PROTO_SCTP => {
            let s = header_at::<12>(l4, off, Layer::Sctp)?;
            h.transport =
                Transport::Sctp { src_port: be16(s[0], s[1]), dst_port: be16(s[2], s[3]) };
            set_payload(h, off, 12, captured, wire);
        }
        _ => {
            ip::set_opaque_payload(h, off, captured, wire);
            h.transport = Transport::Other;
        }
    }
    Ok(())
}

/// Record the payload after a transport header of `hlen` bytes.
#[inline(always)]
fn set_payload(h: &mut Headers, off: usize, hlen: usize, captured: usize, wire: usize) {
    h.payload_offset = clamp_u32(off + hlen.min(captured));
    h.payload_len = clamp_u32(captured.saturating_sub(hlen));
    h.payload_wire_len = clamp_u32(wire.saturating_sub(hlen));
    h.truncated = captured < wire;
}
