//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers, the IPv6 extension-header chain, and the
//! quoted header inside ICMP errors.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    be16, be32, clamp_u32, header_at, transport, DecodeError, DecodeErrorKind, Fragment,
    InnerTuple, IpHeader, Layer, Transport, Upper, MAX_IPV6_EXT_HEADERS,
};

const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AH: u8 = 51;
const EXT_DEST_OPTS: u8 = 60;
// The Mobility header (135) is deliberately not walked: RFC 6275 makes it the last header
// of a packet, and Zeek and Wireshark both stop there, so it is the protocol.
const EXT_HIP: u8 = 139;
const EXT_SHIM6: u8 = 140;

/// Bytes of the datagram present in the frame, and bytes it had on the wire, from `off`.
#[inline(always)]
fn room(frame: &[u8], off: usize, frame_len: u32) -> (usize, usize) {
    let captured = frame.len().saturating_sub(off);
    let wire = (frame_len as usize).saturating_sub(off).max(captured);
    (captured, wire)
}

#[inline(always)]
pub(super) fn decode_ipv4(
    frame: &[u8],
    off: usize,
    frame_len: u32,
) -> Result<(IpHeader, Upper), DecodeError> {
    let hdr = header_at::<20>(frame, off, Layer::Ipv4)?;
    let version = hdr[0] >> 4;
    if version != 4 {
        return Err(DecodeError::new(Layer::Ipv4, DecodeErrorKind::BadVersion(version)));
    }
    let ihl = hdr[0] & 0x0f;
    if ihl < 5 {
        return Err(DecodeError::new(Layer::Ipv4, DecodeErrorKind::BadIhl(ihl)));
    }
    let hlen = usize::from(ihl) * 4;
    let (captured, wire) = room(frame, off, frame_len);
    if captured < hlen {
        return Err(DecodeError::truncated(Layer::Ipv4, hlen, captured));
    }
    let total_field = be16(hdr[2], hdr[3]);
    // A total length of 0 is what TCP segmentation offload leaves in captures taken on the
    // sending host: the datagram is then the rest of the frame.
    let total = if total_field == 0 { wire } else { usize::from(total_field) };
    if total < hlen || total > wire {
        return Err(DecodeError::new(Layer::Ipv4, DecodeErrorKind::BadTotalLength(total_field)));
    }
    let frag_field = be16(hdr[6], hdr[7]);
    let more = frag_field & 0x2000 != 0;
    let frag_off = (frag_field & 0x1fff) << 3;
    let fragment = (more || frag_off != 0).then_some(Fragment {
        offset: frag_off,
        more,
        id: u32::from(be16(hdr[4], hdr[5])),
    });
    let proto = hdr[9];
    let ip = ipv4_header(hdr, total, off, fragment);
    let l4_off = off + hlen;
    let l4_wire = total - hlen;
    let l4_captured = l4_wire.min(captured - hlen);
    if frag_off != 0 {
        // Only the first fragment carries the transport header.
        return Ok((ip, opaque_payload(l4_off, l4_captured, l4_wire)));
    }
    let span =
        transport::Span { off: l4_off, captured: l4_captured, wire: l4_wire, fragmented: more };
    Ok((ip, transport::decode(frame, proto, false, span)?))
}

/// The IPv4 header whose fixed part is `hdr`, at `off` in the frame, `total` bytes of
/// datagram (checked by the caller).
#[inline(always)]
pub(super) fn ipv4_header(
    hdr: &[u8; 20],
    total: usize,
    off: usize,
    fragment: Option<Fragment>,
) -> IpHeader {
    IpHeader {
        src: [u64::from(be32([hdr[12], hdr[13], hdr[14], hdr[15]])) << 32, 0],
        dst: [u64::from(be32([hdr[16], hdr[17], hdr[18], hdr[19]])) << 32, 0],
        v6: false,
        proto: hdr[9],
        ttl: hdr[8],
        ip_len: clamp_u32(total),
        offset: clamp_u32(off),
        fragment,
    }
}

#[inline(always)]
pub(super) fn decode_ipv6(
    frame: &[u8],
    off: usize,
    frame_len: u32,
) -> Result<(IpHeader, Upper), DecodeError> {
    let hdr = header_at::<40>(frame, off, Layer::Ipv6)?;
    let version = hdr[0] >> 4;
    if version != 6 {
        return Err(DecodeError::new(Layer::Ipv6, DecodeErrorKind::BadVersion(version)));
    }
    let (captured, wire) = room(frame, off, frame_len);
    let payload_field = be16(hdr[4], hdr[5]);
    // A payload length of 0 followed by a hop-by-hop header is a jumbogram (RFC 2675):
    // the datagram is the rest of the frame. Otherwise 0 means an empty payload (Zeek
    // and Wireshark read it so too).
    let payload = if payload_field == 0 && hdr[6] == EXT_HOP_BY_HOP {
        wire - 40
    } else {
        usize::from(payload_field)
    };
    if 40 + payload > wire {
        return Err(DecodeError::new(
            Layer::Ipv6,
            DecodeErrorKind::BadPayloadLength(payload_field),
        ));
    }
    let total = 40 + payload;
    let captured_total = total.min(captured);

    // Walk the extension headers.
    let mut next = hdr[6];
    let mut cur = off + 40;
    let mut fragment = None;
    let mut count = 0u8;
    loop {
        let len = match next {
            EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_HIP | EXT_SHIM6 => {
                let e = ext_header(frame, cur, off + captured_total)?;
                (usize::from(e[1]) + 1) * 8
            }
            EXT_AH => {
                let e = ext_header(frame, cur, off + captured_total)?;
                (usize::from(e[1]) + 2) * 4
            }
            EXT_FRAGMENT => {
                let e = ext_header(frame, cur, off + captured_total)?;
                let f = be16(e[2], e[3]);
                let id = be32([e[4], e[5], e[6], e[7]]);
                fragment = Some(Fragment { offset: f & 0xfff8, more: f & 1 != 0, id });
                8
            }
            _ => break,
        };
        count += 1;
        if count > MAX_IPV6_EXT_HEADERS {
            return Err(DecodeError::new(Layer::Ipv6Ext, DecodeErrorKind::TooManyExtHeaders));
        }
        let e = ext_header(frame, cur, off + captured_total)?;
        next = e[0];
        if cur + len > off + total {
            // The header claims to run past the datagram.
            return Err(DecodeError::new(
                Layer::Ipv6Ext,
                DecodeErrorKind::BadLength(u16::try_from(len).unwrap_or(u16::MAX)),
            ));
        }
        if cur + len > off + captured_total {
            return Err(DecodeError::truncated(Layer::Ipv6Ext, len, off + captured_total - cur));
        }
        cur += len;
        // After a non-first fragment header nothing more can be read.
        if matches!(fragment, Some(Fragment { offset, .. }) if offset != 0) {
            break;
        }
    }
    let ip = ipv6_header(hdr, next, total, off, fragment);
    let l4_wire = off + total - cur;
    let l4_captured = (off + captured_total).saturating_sub(cur);
    if matches!(fragment, Some(f) if f.offset != 0) {
        return Ok((ip, opaque_payload(cur, l4_captured, l4_wire)));
    }
    let span = transport::Span {
        off: cur,
        captured: l4_captured,
        wire: l4_wire,
        fragmented: fragment.is_some(),
    };
    Ok((ip, transport::decode(frame, next, true, span)?))
}

/// The first 8 bytes of an extension header, which must lie inside the captured datagram.
#[inline(always)]
fn ext_header(frame: &[u8], cur: usize, end: usize) -> Result<&[u8; 8], DecodeError> {
    let window = frame.get(..end).unwrap_or(frame);
    header_at::<8>(window, cur, Layer::Ipv6Ext)
}

/// The IPv6 header whose fixed part is `hdr`, at `off` in the frame, `total` bytes of
/// packet (40 + payload), its transport protocol `proto` (after any extension headers).
#[inline(always)]
pub(super) fn ipv6_header(
    hdr: &[u8; 40],
    proto: u8,
    total: usize,
    off: usize,
    fragment: Option<Fragment>,
) -> IpHeader {
    IpHeader {
        src: words16(array16(hdr, 8)),
        dst: words16(array16(hdr, 24)),
        v6: true,
        proto,
        ttl: hdr[7],
        ip_len: clamp_u32(total),
        offset: clamp_u32(off),
        fragment,
    }
}

#[inline(always)]
fn words16(b: &[u8; 16]) -> [u64; 2] {
    let v = u128::from_be_bytes(*b);
    [(v >> 64) as u64, v as u64]
}

#[inline(always)]
fn array16(hdr: &[u8; 40], at: usize) -> &[u8; 16] {
    // `at` is 8 or 24, so the slice is always 16 bytes inside the 40-byte header.
    hdr[at..at + 16].first_chunk::<16>().unwrap_or(&[0; 16])
}

/// The payload of an IP datagram whose transport header is not read.
#[inline(always)]
pub(super) fn opaque_payload(off: usize, captured: usize, wire: usize) -> Upper {
    Upper {
        transport: Transport::None,
        payload_offset: clamp_u32(off),
        payload_len: clamp_u32(captured),
        payload_wire_len: clamp_u32(wire),
        truncated: captured < wire,
    }
}

/// The tuple of the datagram quoted in an ICMP error, starting at `off` and ending at
/// `end`. Best effort: quoted datagrams are often cut, so anything short gives `None`.
pub(super) fn quoted_tuple(frame: &[u8], off: usize, end: usize) -> Option<InnerTuple> {
    let q = frame.get(off..end)?;
    let first = *q.first()?;
    let (src, dst, proto, ip_len, l4) = match first >> 4 {
        4 => {
            let hdr = q.first_chunk::<20>()?;
            let hlen = usize::from(hdr[0] & 0x0f) * 4;
            if hlen < 20 {
                return None;
            }
            let frag_off = be16(hdr[6], hdr[7]) & 0x1fff;
            let l4 = if frag_off == 0 { q.get(hlen..) } else { None };
            (
                IpAddr::V4(Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15])),
                IpAddr::V4(Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19])),
                hdr[9],
                u32::from(be16(hdr[2], hdr[3])),
                l4,
            )
        }
        6 => {
            let hdr = q.first_chunk::<40>()?;
            (
                IpAddr::V6(Ipv6Addr::from(*array16(hdr, 8))),
                IpAddr::V6(Ipv6Addr::from(*array16(hdr, 24))),
                hdr[6],
                40 + u32::from(be16(hdr[4], hdr[5])),
                q.get(40..),
            )
        }
        _ => return None,
    };
    let (src_port, dst_port) = match (proto, l4.and_then(|b| b.first_chunk::<4>())) {
        (6 | 17 | 132, Some(p)) => (be16(p[0], p[1]), be16(p[2], p[3])),
        _ => (0, 0),
    };
    Some(InnerTuple { src, dst, proto, src_port, dst_port, ip_len })
}
