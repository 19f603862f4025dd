//! The commonest frame, decoded in one straight pass: Ethernet carrying an unfragmented
//! IPv4 datagram without options that carries TCP or UDP, every header captured.
//!
//! The general walk ([`super::decode_any`]) handles these frames too and gives the same
//! [`Headers`] for them; this path exists because the walk, built from a dozen layers that
//! each check, return and merge, spent about 400 instructions on such a frame
//! (callgrind, `track_loop 1 200000`). Anything this path does not fully recognise, or
//! would reject, it hands back (`None`) for the walk to decode or report: it never makes
//! a decision the walk would make differently. A property test (`packet/tests.rs`) and
//! the `extract` fuzz target hold the two equal on every frame this path accepts.

use super::{
    be16, be32, clamp_u32, link, Headers, IpHeader, LinkType, TcpFlags, TcpHeader, Transport,
    UdpHeader, VlanTags,
};

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Ethernet (14) + IPv4 without options (20) + a TCP header without options (20): the
/// bytes this path reads, wanted in full even for UDP (which needs 8 of the last 20), so
/// one length check covers every read. Shorter frames take the general walk.
const SPAN: usize = 14 + 20 + 20;

/// `frame` (at most 4 GiB) decoded, when it is the common case; `frame_len` is its length
/// on the wire (at least `frame.len()`).
#[inline(always)]
pub(super) fn decode(frame: &[u8], link: LinkType, frame_len: u32) -> Option<Headers> {
    let h: &[u8; SPAN] = frame.first_chunk()?;
    // EtherType IPv4; version 4 with a 20-byte header; neither "more fragments" nor an
    // offset (a first fragment's transport header may be cut: the walk decides).
    if link != LinkType::ETHERNET
        || be16(h[12], h[13]) != link::ETH_IPV4
        || h[14] != 0x45
        || be16(h[20], h[21]) & 0x3fff != 0
    {
        return None;
    }
    let captured = frame.len() - 14;
    let wire = frame_len as usize - 14; // at least `captured`: `frame_len >= frame.len()`
    let total_field = be16(h[16], h[17]);
    // 0: left so by segmentation offload; the datagram is the rest of the frame.
    let total = if total_field == 0 { wire } else { usize::from(total_field) };
    if total < 20 || total > wire {
        return None;
    }
    let proto = h[23];
    // The transport header is captured whenever it fits the datagram: the frame holds
    // `SPAN` bytes, so a cut below it means `total` is shorter, which the length checks
    // below reject.
    let l4_wire = total - 20;
    let l4_captured = l4_wire.min(captured - 20);
    let (transport, hlen, captured, wire) = match proto {
        PROTO_TCP => {
            let data_offset = h[46] >> 4;
            let hlen = usize::from(data_offset) * 4;
            if data_offset < 5 || hlen > l4_wire {
                return None;
            }
            let tcp = TcpHeader {
                src_port: be16(h[34], h[35]),
                dst_port: be16(h[36], h[37]),
                seq: be32([h[38], h[39], h[40], h[41]]),
                ack: be32([h[42], h[43], h[44], h[45]]),
                flags: TcpFlags(be16(h[46], h[47]) & 0x01ff),
                window: be16(h[48], h[49]),
                header_len: hlen as u8,
                offset: 34,
            };
            (Transport::Tcp(tcp), hlen, l4_captured, l4_wire)
        }
        PROTO_UDP => {
            let length = be16(h[38], h[39]);
            let len = usize::from(length);
            if len < 8 || len > l4_wire {
                return None;
            }
            let udp =
                UdpHeader { src_port: be16(h[34], h[35]), dst_port: be16(h[36], h[37]), length };
            (Transport::Udp(udp), 8, l4_captured.min(len), len)
        }
        _ => return None,
    };
    Some(Headers {
        link,
        has_mac: true,
        vlan: VlanTags::default(),
        mpls_depth: 0,
        ethertype: link::ETH_IPV4,
        ip: Some(IpHeader {
            src: [u64::from(be32([h[26], h[27], h[28], h[29]])) << 32, 0],
            dst: [u64::from(be32([h[30], h[31], h[32], h[33]])) << 32, 0],
            v6: false,
            proto,
            ttl: h[22],
            ip_len: clamp_u32(total),
            offset: 14,
            fragment: None,
        }),
        transport,
        payload_offset: clamp_u32(34 + hlen.min(captured)),
        payload_len: clamp_u32(captured.saturating_sub(hlen)),
        payload_wire_len: clamp_u32(wire - hlen),
        frame_len,
        truncated: captured < wire,
    })
}
