//! The commonest frames, decoded in one straight pass: Ethernet carrying TCP or UDP in an
//! unfragmented IPv4 datagram without options or in an IPv6 packet without extension
//! headers, every header captured.
//!
//! The general walk ([`super::decode_any`]) handles these frames too and gives the same
//! [`Headers`] for them; this path exists because the walk, built from a dozen layers that
//! each check, return and merge, spent about 400 instructions on such a frame
//! (callgrind, `track_loop 1 200000`). Anything this path does not fully recognise, or
//! would reject, it hands back (`None`) for the walk to decode or report: it never makes
//! a decision the walk would make differently. A test over generated frames
//! (`packet/tests.rs`) and the `extract` fuzz target hold the two equal on every frame
//! this path accepts.

use super::{
    be16, ip, link, transport, Headers, IpHeader, LinkType, Transport, UdpHeader, Upper, VlanTags,
};

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Ethernet (14) + IPv4 without options (20) + a TCP header without options (20): the
/// bytes read for IPv4, wanted in full even for UDP (which needs 8 of the last 20), so
/// one length check covers every read. Shorter frames take the general walk.
const SPAN_V4: usize = 14 + 20 + 20;

/// The same for IPv6 (a 40-byte header).
const SPAN_V6: usize = 14 + 40 + 20;

/// `frame` (at most 4 GiB) decoded, when it is a common frame; `frame_len` is its length
/// on the wire (at least `frame.len()`).
#[inline(always)]
pub(super) fn decode(frame: &[u8], link: LinkType, frame_len: u32) -> Option<Headers> {
    ipv4(frame, link, frame_len).or_else(|| ipv6(frame, link, frame_len))
}

/// [`decode`] for the IPv4 frames only.
#[inline(always)]
pub(super) fn ipv4(frame: &[u8], link: LinkType, frame_len: u32) -> Option<Headers> {
    let h: &[u8; SPAN_V4] = frame.first_chunk()?;
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
    // `SPAN_V4` bytes, so a cut below it means `total` is shorter, which `upper` rejects.
    let l4_wire = total - 20;
    let upper = upper(h, 34, proto, l4_wire.min(captured - 20), l4_wire)?;
    let ip_hdr: &[u8; 20] = h.get(14..)?.first_chunk()?;
    let ip = ip::ipv4_header(ip_hdr, total, 14, None);
    Some(headers(link::ETH_IPV4, ip, upper, frame_len))
}

/// [`decode`] for the IPv6 frames only.
#[inline(always)]
pub(super) fn ipv6(frame: &[u8], link: LinkType, frame_len: u32) -> Option<Headers> {
    let h: &[u8; SPAN_V6] = frame.first_chunk()?;
    // EtherType IPv6; version 6, and the next header TCP or UDP itself (no extension
    // headers; a payload length of 0 then means an empty payload, which no TCP or UDP
    // header fits).
    let proto = h[20];
    if link != LinkType::ETHERNET
        || be16(h[12], h[13]) != link::ETH_IPV6
        || h[14] >> 4 != 6
        || (proto != PROTO_TCP && proto != PROTO_UDP)
    {
        return None;
    }
    let captured = frame.len() - 14;
    let wire = frame_len as usize - 14;
    let payload = usize::from(be16(h[18], h[19]));
    if 40 + payload > wire {
        return None;
    }
    // As for IPv4: with `SPAN_V6` bytes captured, the transport header is cut only when
    // the payload is shorter than it.
    let upper = upper(h, 54, proto, payload.min(captured - 40), payload)?;
    let ip_hdr: &[u8; 40] = h.get(14..)?.first_chunk()?;
    let ip = ip::ipv6_header(ip_hdr, proto, 40 + payload, 14, None);
    Some(headers(link::ETH_IPV6, ip, upper, frame_len))
}

/// The TCP or UDP header at `off` of `h`, whose IP payload has `captured` bytes of `wire`
/// in the frame, with its payload placed as the walk's transport layer places it; `None`
/// where the walk would reject it, or for any other protocol.
#[inline(always)]
fn upper<const N: usize>(
    h: &[u8; N],
    off: usize,
    proto: u8,
    captured: usize,
    wire: usize,
) -> Option<Upper> {
    let t: &[u8; 20] = h.get(off..)?.first_chunk()?;
    match proto {
        PROTO_TCP => {
            let data_offset = t[12] >> 4;
            let hlen = usize::from(data_offset) * 4;
            if data_offset < 5 || hlen > wire {
                return None;
            }
            let tcp = Transport::Tcp(transport::tcp_header(t, hlen, off));
            Some(transport::with_payload(tcp, off, hlen, captured, wire))
        }
        PROTO_UDP => {
            let length = be16(t[4], t[5]);
            let len = usize::from(length);
            if len < 8 || len > wire {
                return None;
            }
            let udp = UdpHeader { src_port: be16(t[0], t[1]), dst_port: be16(t[2], t[3]), length };
            Some(transport::with_payload(Transport::Udp(udp), off, 8, captured.min(len), len))
        }
        _ => None,
    }
}

/// The headers of an Ethernet frame of EtherType `ethertype` carrying `ip` and, right
/// after its fixed header, `upper`.
#[inline(always)]
fn headers(ethertype: u16, ip: IpHeader, upper: Upper, frame_len: u32) -> Headers {
    let Upper { transport, payload_offset, payload_len, payload_wire_len, truncated } = upper;
    Headers {
        link: LinkType::ETHERNET,
        has_mac: true,
        vlan: VlanTags::default(),
        mpls_depth: 0,
        ethertype,
        ip: Some(ip),
        transport,
        payload_offset,
        payload_len,
        payload_wire_len,
        frame_len,
        truncated,
    }
}
