//! Checksum verification (RFC 1071's Internet checksum), for
//! `FlowTrackerConfig::verify_checksums`.
//!
//! Written here rather than taken from a crate: the crates that have it either come with
//! a parser of their own (etherparse) or sum one contiguous buffer, while the check needs
//! a pseudo-header and a range of a frame that [`decode`](super::decode) has already
//! read, and nothing allocated. It is a dozen lines.
//!
//! What is verified, and what is not, follows Zeek (which verifies unless run with `-C`):
//! the IPv4 header checksum of every IPv4 packet; the TCP, UDP, ICMP and ICMPv6 checksums
//! of whole datagrams whose bytes were all captured (a segment cut by snaplen, or an IP
//! fragment, cannot be summed and passes); not a UDP checksum of zero over IPv4 (RFC 768:
//! no checksum sent), nor over IPv6 on a VXLAN port when the payload looks like VXLAN
//! (RFC 7348 lets tunnel endpoints send zero there).

use super::{Headers, IpHeader, Transport};

/// What checking a packet's checksums found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every checksum that could be checked holds.
    Good,
    /// The IPv4 header checksum is wrong: nothing in the packet can be trusted.
    BadIp,
    /// The transport checksum is wrong.
    BadTransport,
}

/// Add `bytes`, taken as big-endian 16-bit words (a last odd byte padded with zero), to
/// the running sum `acc`. Four bytes are added at a time: a 32-bit word folds to the sum
/// of its two halves, since 2^16 = 1 in ones'-complement arithmetic.
fn add(acc: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(4);
    let mut sum = acc;
    for c in &mut chunks {
        sum += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let mut tail = [0u8; 4];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    sum + u64::from(u32::from_be_bytes(tail))
}

/// Fold a running sum to 16 bits. A range that includes its own correct checksum folds
/// to `0xffff`.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// True when the IPv4 header at `ip.offset` in `frame` sums correctly (and for IPv6,
/// which has no header checksum). A header that is not all in `frame` cannot have
/// decoded, so it is taken as good.
fn ip_header_ok(frame: &[u8], ip: &IpHeader) -> bool {
    if ip.v6 {
        return true;
    }
    let off = ip.offset as usize;
    let Some(&first) = frame.get(off) else { return true };
    let hlen = usize::from(first & 0x0f) * 4;
    frame.get(off..off + hlen).map_or(true, |h| fold(add(0, h)) == 0xffff)
}

/// Check the checksums of a decoded packet: the IPv4 header's when `check_ip` (not for
/// a datagram rebuilt from fragments, whose header was rewritten), then the transport
/// checksum. `vxlan_ports` are the UDP ports taken as VXLAN's (0: none).
pub(crate) fn verify(frame: &[u8], h: &Headers, check_ip: bool, vxlan_ports: &[u16]) -> Verdict {
    let Some(ip) = &h.ip else { return Verdict::Good };
    if check_ip && !ip_header_ok(frame, ip) {
        return Verdict::BadIp;
    }
    if transport_ok(frame, h, ip, vxlan_ports) {
        Verdict::Good
    } else {
        Verdict::BadTransport
    }
}

/// The destination the upper layer of an IPv6 packet (header at `ip` in `frame`, upper
/// layer at `l4`) sums: when the first routing header is of type 0 and has segments left,
/// the last address it lists (RFC 8200 section 8.1), as Zeek takes it; `None` for the
/// header's own. Type 2 (Mobile IPv6) is left alone, as Zeek's default build leaves it.
fn ipv6_final_destination(frame: &[u8], ip: usize, l4: usize) -> Option<&[u8]> {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const AH: u8 = 51;
    const DEST_OPTS: u8 = 60;
    let mut next = *frame.get(ip + 6)?;
    let mut at = ip + 40;
    while at < l4 {
        let h = frame.get(at..at + 8)?;
        let len = match next {
            ROUTING => {
                let (addrs, kind, left) = (usize::from(h[1]), h[2], h[3]);
                if kind != 0 || left == 0 || addrs < 2 || addrs % 2 != 0 {
                    return None;
                }
                let last = at + 8 + 8 * addrs - 16;
                return frame.get(last..last + 16);
            }
            HOP_BY_HOP | DEST_OPTS => (usize::from(h[1]) + 1) * 8,
            FRAGMENT => 8,
            AH => (usize::from(h[1]) + 2) * 4,
            _ => return None,
        };
        next = h[0];
        at += len;
    }
    None
}

/// The transport checksum of a whole, fully captured TCP, UDP or ICMP datagram.
fn transport_ok(frame: &[u8], h: &Headers, ip: &IpHeader, vxlan_ports: &[u16]) -> bool {
    if h.truncated || ip.fragment.is_some() {
        return true;
    }
    let body = h.payload_wire_len as usize;
    let (off, len, pseudo) = match h.transport {
        Transport::Tcp(t) => (t.offset as usize, usize::from(t.header_len) + body, true),
        Transport::Udp(u) => {
            let off = (h.payload_offset as usize).saturating_sub(8);
            let Some(&[hi, lo]) = frame.get(off + 6..off + 8) else { return true };
            if [hi, lo] == [0, 0] {
                if !ip.v6 {
                    return true;
                }
                let vxlan = u.dst_port != 0
                    && vxlan_ports.contains(&u.dst_port)
                    && body > 8 + 14
                    && frame.get(h.payload_offset as usize).is_some_and(|b| b & 0x08 != 0);
                if vxlan {
                    return true;
                }
            }
            (off, 8 + body, true)
        }
        // ICMPv4 sums the message alone; ICMPv6 adds the pseudo-header.
        Transport::Icmp(c) => (c.offset as usize, 8 + body, c.v6),
        _ => return true,
    };
    let Some(segment) = frame.get(off..off + len) else { return true };
    let mut sum = add(0, segment);
    if pseudo {
        sum = add_pseudo_header(sum, frame, ip, off, len);
    }
    fold(sum) == 0xffff
}

/// Add the pseudo-header (RFC 9293 section 3.1, RFC 768, RFC 8200 section 8.1) of an
/// upper-layer packet of `len` bytes at `l4` in `frame`: the addresses, read from the IP
/// header, the protocol and the length.
fn add_pseudo_header(sum: u64, frame: &[u8], ip: &IpHeader, l4: usize, len: usize) -> u64 {
    let off = ip.offset as usize;
    let sum = if ip.v6 {
        let src = frame.get(off + 8..off + 24).unwrap_or(&[]);
        let dst = ipv6_final_destination(frame, off, l4)
            .or_else(|| frame.get(off + 24..off + 40))
            .unwrap_or(&[]);
        add(add(sum, src), dst)
    } else {
        add(sum, frame.get(off + 12..off + 20).unwrap_or(&[]))
    };
    // IPv4 carries the protocol and a 16-bit length; IPv6 a 32-bit length and the next
    // header (the transport's, after any extension headers). Summed as 16-bit words
    // both come to the same value.
    sum + u64::from(ip.proto) + len as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{decode, LinkType, PacketView};
    use crate::testkit::{self, flags, Frame};
    use crate::Timestamp;
    use core::net::IpAddr;
    use proptest::prelude::*;

    fn headers(frame: &[u8]) -> Headers {
        decode(&PacketView::new(Timestamp::ZERO, LinkType::ETHERNET, frame)).unwrap()
    }

    fn verdict(frame: &[u8]) -> Verdict {
        verify(frame, &headers(frame), true, &[4789])
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rfc_1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(fold(add(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0xddf2);
        // An odd byte is the high half of a last word.
        assert_eq!(fold(add(0, &[0x00, 0x01, 0xf2])), 0xf201);
    }

    #[test]
    fn built_frames_pass_and_one_flipped_bit_fails() {
        let frames = [
            Frame::tcp(addr("10.0.0.1"), 1234, addr("10.0.0.2"), 80, flags::PSH_ACK, 7, 9)
                .payload(b"hello, world")
                .build(),
            Frame::tcp(addr("2001:db8::1"), 1234, addr("2001:db8::2"), 80, flags::SYN, 7, 0)
                .tcp_options(&[2, 4, 5, 0xb4])
                .build(),
            Frame::udp(addr("10.0.0.1"), 53, addr("10.0.0.2"), 5353).payload(b"odd").build(),
            Frame::udp(addr("2001:db8::1"), 53, addr("2001:db8::2"), 5353).payload(b"x").build(),
            Frame::icmp(addr("10.0.0.1"), addr("10.0.0.2"), 8, 0, [0, 1, 0, 2])
                .payload(b"ping")
                .build(),
            Frame::icmp(addr("2001:db8::1"), addr("2001:db8::2"), 128, 0, [0, 1, 0, 2])
                .payload(b"ping6")
                .build(),
        ];
        for f in &frames {
            assert_eq!(verdict(f), Verdict::Good, "{f:02x?}");
            // The last header byte changed (not the Ethernet padding after the datagram): the
            // transport checksum no longer holds.
            let mut bad = f.clone();
            bad[headers(f).payload_offset as usize - 1] ^= 0x40;
            assert_eq!(verdict(&bad), Verdict::BadTransport, "{f:02x?}");
        }
        // The IPv4 header's TTL changed: the header checksum fails first.
        let mut bad = frames[0].clone();
        bad[14 + 8] ^= 1;
        assert_eq!(verdict(&bad), Verdict::BadIp);
        // Unless the header is not to be checked (a rebuilt datagram's).
        assert_eq!(verify(&bad, &headers(&bad), false, &[]), Verdict::Good);
    }

    #[test]
    fn zero_udp_checksums_are_optional_over_ipv4_and_on_vxlan_ports_only() {
        let zero = |f: &mut Vec<u8>, ip_len: usize| {
            let at = 14 + ip_len + 6;
            f[at..at + 2].copy_from_slice(&[0, 0]);
        };
        let mut v4 = Frame::udp(addr("10.0.0.1"), 1, addr("10.0.0.2"), 2).payload(b"x").build();
        zero(&mut v4, 20);
        assert_eq!(verdict(&v4), Verdict::Good);
        let mut v6 =
            Frame::udp(addr("2001:db8::1"), 1, addr("2001:db8::2"), 2).payload(b"x").build();
        zero(&mut v6, 40);
        assert_eq!(verdict(&v6), Verdict::BadTransport);
        // VXLAN over IPv6 with the I flag set and room for an inner Ethernet header.
        let vxlan = |i_flag: u8| {
            let mut body = vec![i_flag, 0, 0, 0, 0, 0, 1, 0];
            body.extend_from_slice(&[0u8; 30]);
            let mut f = Frame::udp(addr("2001:db8::1"), 40000, addr("2001:db8::2"), 4789)
                .payload(&body)
                .build();
            zero(&mut f, 40);
            f
        };
        assert_eq!(verdict(&vxlan(0x08)), Verdict::Good);
        assert_eq!(verdict(&vxlan(0x00)), Verdict::BadTransport);
    }

    #[test]
    fn cut_frames_and_fragments_are_not_summed() {
        let f = Frame::tcp(addr("10.0.0.1"), 1, addr("10.0.0.2"), 2, flags::ACK, 1, 1)
            .payload(&[7; 100])
            .build();
        let mut cut = f[..f.len() - 10].to_vec();
        *cut.last_mut().unwrap() ^= 0xff;
        let view = PacketView::new(Timestamp::ZERO, LinkType::ETHERNET, &cut)
            .with_orig_len(f.len() as u32);
        let h = decode(&view).unwrap();
        assert!(h.truncated);
        assert_eq!(verify(&cut, &h, true, &[]), Verdict::Good);
        let frag = Frame::udp(addr("10.0.0.1"), 1, addr("10.0.0.2"), 2)
            .payload(&[1; 64])
            .fragments(&[32], 9)
            .remove(0);
        assert_eq!(verdict(&frag), Verdict::Good);
    }

    #[test]
    fn a_type_0_routing_header_with_segments_left_names_the_destination_summed() {
        // Sent to `hop` on its way to `last`: the sender summed with `last`.
        let (hop, last) = (addr("2001:db8::10"), addr("2001:db8::20"));
        let (IpAddr::V6(h6), IpAddr::V6(l6)) = (hop, last) else { unreachable!() };
        let routed = |left: u8| {
            let mut body = vec![0, left, 0, 0, 0, 0];
            body.extend_from_slice(&h6.octets());
            body.extend_from_slice(&l6.octets());
            let mut f = Frame::udp(addr("2001:db8::1"), 53, last, 5353)
                .ipv6_ext(43, &body)
                .payload(b"routed")
                .build();
            f[14 + 24..14 + 40].copy_from_slice(&h6.octets());
            f
        };
        assert_eq!(verdict(&routed(1)), Verdict::Good);
        // No segments left: the header's destination is the final one, and the sum fails.
        assert_eq!(verdict(&routed(0)), Verdict::BadTransport);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The word-at-a-time sum equals the byte-pair sum of the test kit, for any bytes
        /// and any split into two parts (the pseudo-header and the segment).
        #[test]
        fn sum_matches_the_byte_pair_sum(
            a in proptest::collection::vec(any::<u8>(), 0..64),
            b in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            // Parts of even length, so the pairs are the same wherever the split falls.
            let a = &a[..a.len() & !1];
            let ours = fold(add(add(0, a), &b));
            prop_assert_eq!(!ours, testkit::checksum(&[a, &b]));
        }
    }
}
