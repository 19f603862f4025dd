//! Decoder tests: one hand-built frame per header kind, every truncation point, and the
//! hostile-length cases.

use core::net::IpAddr;

use super::*;
use crate::testkit::{flags, Frame};

const TS: Timestamp = Timestamp::from_nanos(1_000_000_000);

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dec(link: LinkType, frame: &[u8]) -> Result<Headers, DecodeError> {
    decode(&PacketView::new(TS, link, frame))
}

fn tcp4() -> Frame {
    Frame::tcp(v4("10.0.0.1"), 40000, v4("10.0.0.2"), 80, flags::PSH_ACK, 1000, 2000)
        .payload(b"GET / HTTP/1.1\r\n\r\n")
}

fn tcp6() -> Frame {
    Frame::tcp(v4("2001:db8::1"), 40000, v4("2001:db8::2"), 443, flags::SYN, 7, 0)
}

#[test]
fn ethernet_ipv4_tcp_fields() {
    let f = tcp4().build();
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    let ip = h.ip.unwrap();
    assert_eq!(ip.src(), v4("10.0.0.1"));
    assert_eq!(ip.dst(), v4("10.0.0.2"));
    assert_eq!(ip.proto, 6);
    assert_eq!(ip.ip_len, 20 + 20 + 18);
    assert_eq!(ip.offset, 14);
    assert_eq!(ip.fragment, None);
    let t = h.tcp().unwrap();
    assert_eq!((t.src_port, t.dst_port, t.seq, t.ack), (40000, 80, 1000, 2000));
    assert_eq!(t.flags.0, TcpFlags::PSH | TcpFlags::ACK);
    assert_eq!(t.header_len, 20);
    assert_eq!(h.payload(&f), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(h.payload_wire_len, 18);
    assert!(!h.truncated);
    assert_eq!(h.frame_len, f.len() as u32);
    assert_eq!(h.mac(&f).unwrap().src, [2, 0, 0, 0, 0, 1]);
    assert_eq!(h.mac(&f).unwrap().dst, [2, 0, 0, 0, 0, 2]);
}

#[test]
fn ethernet_padding_is_not_payload() {
    // A bare ACK is 54 bytes and gets padded to 60; the padding must not become payload.
    let f = Frame::tcp(v4("10.0.0.1"), 1, v4("10.0.0.2"), 2, flags::ACK, 1, 1).build();
    assert_eq!(f.len(), 60);
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert_eq!(h.payload_len, 0);
    assert_eq!(h.payload_wire_len, 0);
    assert_eq!(h.ip.unwrap().ip_len, 40);
}

#[test]
fn tcp_options_length_is_checked() {
    let f = tcp4().tcp_options(&[2, 4, 5, 0xb4, 4, 2]).build(); // MSS, SACK-permitted
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    let t = h.tcp().unwrap();
    assert_eq!(t.header_len, 28);
    assert_eq!(t.options(&f).unwrap(), &[2, 4, 5, 0xb4, 4, 2, 1, 1]);
    assert_eq!(h.payload(&f), b"GET / HTTP/1.1\r\n\r\n");

    // Data offset 4 is a content fault.
    let mut bad = tcp4().build();
    bad[14 + 20 + 12] = 0x40;
    let e = dec(LinkType::ETHERNET, &bad).unwrap_err();
    assert_eq!(e, DecodeError::new(Layer::Tcp, DecodeErrorKind::BadDataOffset(4)));

    // Data offset 15 (60 bytes) beyond the 38-byte segment.
    bad[14 + 20 + 12] = 0xf0;
    let e = dec(LinkType::ETHERNET, &bad).unwrap_err();
    assert_eq!(e, DecodeError::new(Layer::Tcp, DecodeErrorKind::BadDataOffset(15)));
}

#[test]
fn ipv4_options_and_hostile_lengths() {
    let f = tcp4().ipv4_options(&[0x94, 0x04, 0, 0]).build(); // router alert
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert_eq!(h.tcp().unwrap().offset, 14 + 24);
    assert_eq!(h.payload(&f), b"GET / HTTP/1.1\r\n\r\n");

    let mut bad = tcp4().build();
    bad[14] = 0x44; // IHL 4
    assert_eq!(
        dec(LinkType::ETHERNET, &bad).unwrap_err(),
        DecodeError::new(Layer::Ipv4, DecodeErrorKind::BadIhl(4))
    );
    let mut bad = tcp4().build();
    bad[14] = 0x55; // version 5
    assert_eq!(dec(LinkType::ETHERNET, &bad).unwrap_err().kind, DecodeErrorKind::BadVersion(5));
    let mut bad = tcp4().build();
    bad[16..18].copy_from_slice(&10u16.to_be_bytes()); // total < header
    assert_eq!(
        dec(LinkType::ETHERNET, &bad).unwrap_err().kind,
        DecodeErrorKind::BadTotalLength(10)
    );
    let mut bad = tcp4().build();
    bad[16..18].copy_from_slice(&1500u16.to_be_bytes()); // total > frame on the wire
    assert_eq!(
        dec(LinkType::ETHERNET, &bad).unwrap_err().kind,
        DecodeErrorKind::BadTotalLength(1500)
    );
}

#[test]
fn snaplen_cut_payload_keeps_the_key() {
    let f = tcp4().build();
    let cut = &f[..14 + 20 + 20 + 4];
    let view = PacketView::new(TS, LinkType::ETHERNET, cut).with_orig_len(f.len() as u32);
    let h = decode(&view).unwrap();
    assert!(h.truncated);
    assert_eq!(h.payload(cut), b"GET ");
    assert_eq!(h.payload_wire_len, 18);
    assert_eq!(h.ip.unwrap().ip_len, 58);
    assert_eq!(h.frame_len, f.len() as u32);

    // Cut inside the TCP options: the fixed header is still there.
    let f = tcp4().tcp_options(&[2, 4, 5, 0xb4]).build();
    let cut = &f[..14 + 20 + 22];
    let view = PacketView::new(TS, LinkType::ETHERNET, cut).with_orig_len(f.len() as u32);
    let h = decode(&view).unwrap();
    assert!(h.truncated);
    assert_eq!(h.tcp().unwrap().dst_port, 80);
    assert_eq!(h.tcp().unwrap().options(cut), None);
    assert_eq!(h.payload_len, 0);
}

/// Cut a frame at every offset (as a snaplen would, keeping the wire length): the result
/// is either a full key or a `Truncated` error at the right layer, never a panic.
fn sweep(link: LinkType, f: &[u8], key_from: usize, layer_at: &dyn Fn(usize) -> Layer) {
    for cut in 0..f.len() {
        let view = PacketView::new(TS, link, &f[..cut]).with_orig_len(f.len() as u32);
        match decode(&view) {
            Ok(h) => {
                assert!(cut >= key_from, "cut {cut}: decoded before headers were complete");
                assert!(h.ip.is_some());
                assert!(h.payload_offset as usize + h.payload_len as usize <= cut);
            }
            Err(e) => {
                assert!(cut < key_from, "cut {cut}: {e}");
                assert!(e.is_truncated(), "cut {cut}: {e}");
                assert_eq!(e.layer, layer_at(cut), "cut {cut}");
            }
        }
    }
    // Cut *and* lie about the wire length (orig_len == caplen): the IP length now claims
    // more than was on the wire, which is a content fault at the IP layer, or the headers
    // are cut.
    for cut in 0..f.len() {
        let r = dec(link, &f[..cut]);
        if let Err(e) = r {
            assert!(
                e.is_truncated()
                    || matches!(
                        e.kind,
                        DecodeErrorKind::BadTotalLength(_) | DecodeErrorKind::BadPayloadLength(_)
                    ),
                "cut {cut}: {e}"
            );
        }
    }
}

#[test]
fn every_truncation_of_ethernet_ipv4_tcp() {
    let f = tcp4().build();
    sweep(LinkType::ETHERNET, &f, 14 + 20 + 20, &|cut| match cut {
        0..=13 => Layer::Link,
        14..=33 => Layer::Ipv4,
        _ => Layer::Tcp,
    });
}

#[test]
fn every_truncation_of_vlan_ipv6_tcp() {
    let f = tcp6().vlan(10).vlan(20).build();
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert_eq!(h.vlan.outer(), Some(10));
    assert_eq!(h.vlan.inner(), Some(20));
    assert_eq!(h.vlan.depth(), 2);
    assert_eq!(h.ip.unwrap().ip_len, 60);
    sweep(LinkType::ETHERNET, &f, 14 + 8 + 40 + 20, &|cut| match cut {
        0..=13 => Layer::Link,
        14..=21 => Layer::Vlan,
        22..=61 => Layer::Ipv6,
        _ => Layer::Tcp,
    });
}

#[test]
fn every_truncation_of_ipv6_with_extension_headers() {
    let f = tcp6().ipv6_ext(0, &[1, 4, 0, 0, 0, 0]).ipv6_ext(60, &[1, 4, 0, 0, 0, 0]).build();
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert_eq!(h.ip.unwrap().proto, 6);
    assert_eq!(h.tcp().unwrap().offset, 14 + 40 + 16);
    sweep(LinkType::ETHERNET, &f, 14 + 40 + 16 + 20, &|cut| match cut {
        0..=13 => Layer::Link,
        14..=53 => Layer::Ipv6,
        54..=69 => Layer::Ipv6Ext,
        _ => Layer::Tcp,
    });
}

#[test]
fn ipv6_extension_chain_bounds() {
    // 17 destination-options headers: one more than the cap.
    let mut f = tcp6();
    for _ in 0..17 {
        f = f.ipv6_ext(60, &[1, 4, 0, 0, 0, 0]);
    }
    assert_eq!(
        dec(LinkType::ETHERNET, &f.build()).unwrap_err(),
        DecodeError::new(Layer::Ipv6Ext, DecodeErrorKind::TooManyExtHeaders)
    );
    // A header whose length runs past the datagram.
    let mut bytes = tcp6().ipv6_ext(60, &[1, 4, 0, 0, 0, 0]).build();
    bytes[14 + 41] = 200;
    assert_eq!(dec(LinkType::ETHERNET, &bytes).unwrap_err().layer, Layer::Ipv6Ext);
    // AH counts its length in 4-byte units.
    let f = tcp6().ipv6_ext(51, &[0; 10]).build();
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert_eq!(h.tcp().unwrap().offset, 14 + 40 + 12);
}

#[test]
fn ipv6_payload_length_beyond_wire() {
    let mut f = tcp6().build();
    f[18..20].copy_from_slice(&9000u16.to_be_bytes());
    assert_eq!(
        dec(LinkType::ETHERNET, &f).unwrap_err().kind,
        DecodeErrorKind::BadPayloadLength(9000)
    );
}

#[test]
fn ipv4_fragments() {
    let first = Frame::udp(v4("10.0.0.1"), 5000, v4("10.0.0.2"), 53)
        .payload(&[7; 40])
        .fragment(0, true, 77)
        .build();
    let h = dec(LinkType::ETHERNET, &first).unwrap();
    let frag = h.ip.unwrap().fragment.unwrap();
    assert_eq!(frag, Fragment { offset: 0, more: true, id: 77 });
    assert!(matches!(h.transport, Transport::Udp(u) if u.dst_port == 53));

    // A first fragment whose UDP length covers more than the fragment is fine.
    let mut first = first.clone();
    first[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&1000u16.to_be_bytes());
    assert!(dec(LinkType::ETHERNET, &first).is_ok());

    let later = Frame::raw(v4("10.0.0.1"), v4("10.0.0.2"), 17)
        .payload(&[7; 40])
        .fragment(48, false, 77)
        .build();
    let h = dec(LinkType::ETHERNET, &later).unwrap();
    assert_eq!(h.ip.unwrap().fragment.unwrap().offset, 48);
    assert_eq!(h.transport, Transport::None);
    assert_eq!(h.payload_len, 40);
}

#[test]
fn ipv6_fragment_header() {
    let later = Frame::raw(v4("2001:db8::1"), v4("2001:db8::2"), 17)
        .payload(&[1; 16])
        .fragment(1232, false, 0xdead_beef)
        .build();
    let h = dec(LinkType::ETHERNET, &later).unwrap();
    let ip = h.ip.unwrap();
    assert_eq!(ip.fragment, Some(Fragment { offset: 1232, more: false, id: 0xdead_beef }));
    assert_eq!(ip.proto, 17);
    assert_eq!(h.transport, Transport::None);
}

#[test]
fn udp_lengths() {
    let f = Frame::udp(v4("10.0.0.1"), 5000, v4("10.0.0.2"), 53).payload(b"abcd").build();
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert!(matches!(h.transport, Transport::Udp(UdpHeader { length: 12, .. })));
    assert_eq!(h.payload(&f), b"abcd");
    for bad_len in [0u16, 7, 13, 400] {
        let mut b = f.clone();
        b[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&bad_len.to_be_bytes());
        assert_eq!(
            dec(LinkType::ETHERNET, &b).unwrap_err(),
            DecodeError::new(Layer::Udp, DecodeErrorKind::BadLength(bad_len))
        );
    }
    // A UDP length shorter than the IP payload bounds the payload.
    let mut b = f.clone();
    b[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&10u16.to_be_bytes());
    let h = dec(LinkType::ETHERNET, &b).unwrap();
    assert_eq!(h.payload(&b), b"ab");
}

#[test]
fn icmp_echo_and_error_with_quoted_tuple() {
    let echo = Frame::icmp(v4("10.0.0.1"), v4("10.0.0.2"), 8, 0, [0, 1, 0, 7]).payload(&[0; 8]);
    let h = dec(LinkType::ETHERNET, &echo.build()).unwrap();
    let Transport::Icmp(i) = h.transport else { panic!("not icmp") };
    assert_eq!((i.ty, i.code, i.rest, i.v6), (8, 0, [0, 1, 0, 7], false));
    assert!(!i.is_error());
    assert_eq!(i.inner(&echo.build()), None);

    // Port unreachable quoting a UDP datagram 10.0.0.2:5353 -> 10.0.0.1:9999.
    let quoted = Frame::udp(v4("10.0.0.2"), 5353, v4("10.0.0.1"), 9999).payload(b"x").build();
    let err =
        Frame::icmp(v4("10.0.0.1"), v4("10.0.0.2"), 3, 3, [0; 4]).payload(&quoted[14..14 + 28]);
    let err = err.build();
    let h = dec(LinkType::ETHERNET, &err).unwrap();
    let Transport::Icmp(i) = h.transport else { panic!("not icmp") };
    assert!(i.is_error());
    assert_eq!(
        i.inner(&err),
        Some(InnerTuple {
            src: v4("10.0.0.2"),
            dst: v4("10.0.0.1"),
            proto: 17,
            src_port: 5353,
            dst_port: 9999,
            ip_len: 29,
        })
    );

    // ICMPv6 echo over IPv6.
    let f = Frame::icmp(v4("2001:db8::1"), v4("2001:db8::2"), 128, 0, [0; 4]).build();
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert!(matches!(h.transport, Transport::Icmp(IcmpHeader { v6: true, ty: 128, .. })));
}

#[test]
fn link_types() {
    let base = tcp4();
    for link in [
        LinkType::RAW,
        LinkType::NULL,
        LinkType::LINUX_SLL,
        LinkType::LINUX_SLL2,
        LinkType::ETHERNET,
    ] {
        let f = base.clone().link(link).build();
        let h = dec(link, &f).unwrap_or_else(|e| panic!("{link:?}: {e}"));
        assert_eq!(h.tcp().unwrap().dst_port, 80, "{link:?}");
        assert_eq!(h.payload(&f), b"GET / HTTP/1.1\r\n\r\n", "{link:?}");
    }
    let v6 = tcp6().link(LinkType::RAW).build();
    assert!(dec(LinkType::RAW, &v6).unwrap().ip.unwrap().src().is_ipv6());
    assert!(dec(LinkType::IPV6, &v6).unwrap().ip.unwrap().src().is_ipv6());
    let f4 = tcp4().link(LinkType::RAW).build();
    assert_eq!(dec(LinkType::IPV4, &f4).unwrap().tcp().unwrap().dst_port, 80);
    // The same bytes read as IPv6-only are a version mismatch.
    assert!(dec(LinkType::IPV6, &f4).is_err());
    // DLT_NULL written big-endian (by a big-endian host).
    let mut f = tcp6().link(LinkType::NULL).build();
    f[0..4].copy_from_slice(&24u32.to_be_bytes());
    assert!(dec(LinkType::NULL, &f).unwrap().ip.unwrap().src().is_ipv6());
    // DLT_LOOP is always network order.
    assert!(dec(LinkType::LOOP, &f).unwrap().ip.unwrap().src().is_ipv6());
    assert_eq!(
        dec(LinkType(147), &f).unwrap_err(),
        DecodeError::new(Layer::Link, DecodeErrorKind::UnsupportedLinkType(147))
    );
}

#[test]
fn nflog_payload_tlv() {
    let ip = tcp4().link(LinkType::RAW).build();
    let mut f = vec![2, 0, 0, 0]; // AF_INET, version 0, resource 0
                                  // A prefix TLV (type 10) of 5 bytes (one byte of text), padded to 8, then the payload TLV (type 9).
    f.extend_from_slice(&[5, 0, 10, 0, b'x', 0, 0, 0]);
    f.extend_from_slice(&((ip.len() + 4) as u16).to_le_bytes());
    f.extend_from_slice(&9u16.to_le_bytes());
    f.extend_from_slice(&ip);
    let h = dec(LinkType::NFLOG, &f).unwrap();
    assert_eq!(h.ip.unwrap().offset, 16);
    assert_eq!(h.payload(&f), b"GET / HTTP/1.1\r\n\r\n");
    // A zero-length TLV is a content fault, not a loop.
    let mut bad = vec![2, 0, 0, 0, 0, 0, 1, 0];
    bad.extend_from_slice(&ip);
    assert_eq!(dec(LinkType::NFLOG, &bad).unwrap_err().kind, DecodeErrorKind::BadLength(0));
}

#[test]
fn mpls_and_pppoe() {
    let f = tcp4().mpls(100).mpls(200).build();
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert_eq!(h.mpls_depth, 2);
    assert_eq!(h.tcp().unwrap().dst_port, 80);

    // 17 labels with no bottom-of-stack bit.
    let mut bad = tcp4().build();
    bad[12..14].copy_from_slice(&0x8847u16.to_be_bytes());
    let mut stack = Vec::new();
    for _ in 0..17 {
        stack.extend_from_slice(&[0, 0x64, 0, 64]);
    }
    bad.splice(14..14, stack);
    assert_eq!(
        dec(LinkType::ETHERNET, &bad).unwrap_err(),
        DecodeError::new(Layer::Mpls, DecodeErrorKind::TooManyMplsLabels)
    );

    // PPPoE session carrying IPv4.
    let mut p = tcp4().build();
    p[12..14].copy_from_slice(&0x8864u16.to_be_bytes());
    p.splice(14..14, [0x11, 0, 0, 1, 0, 60, 0, 0x21]);
    let h = dec(LinkType::ETHERNET, &p).unwrap();
    assert_eq!(h.tcp().unwrap().dst_port, 80);
}

#[test]
fn vlan_nesting_is_bounded() {
    let mut f = tcp4();
    for id in 0..9 {
        f = f.vlan(id);
    }
    assert_eq!(
        dec(LinkType::ETHERNET, &f.build()).unwrap_err(),
        DecodeError::new(Layer::Vlan, DecodeErrorKind::TooManyVlanTags)
    );
    let mut f = tcp4();
    for id in 0..8 {
        f = f.vlan(id + 1);
    }
    let h = dec(LinkType::ETHERNET, &f.build()).unwrap();
    assert_eq!((h.vlan.outer(), h.vlan.inner(), h.vlan.depth()), (Some(1), Some(2), 8));
}

#[test]
fn non_ip_frames_decode_without_ip() {
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    let h = dec(LinkType::ETHERNET, &arp).unwrap();
    assert_eq!(h.ip, None);
    assert_eq!(h.ethertype, 0x0806);
    assert_eq!(h.transport, Transport::None);
}

#[test]
fn tso_zero_total_length_uses_the_frame() {
    let mut f = tcp4().build();
    f[16..18].copy_from_slice(&[0, 0]);
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert_eq!(h.ip.unwrap().ip_len, (f.len() - 14) as u32);
}

#[test]
fn random_bytes_never_panic() {
    // A cheap deterministic smoke test; the fuzz target `extract` goes much further.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut buf = [0u8; 128];
    for _ in 0..20_000 {
        for b in buf.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        let len = (state >> 32) as usize % buf.len();
        for lt in [0, 1, 101, 108, 113, 228, 229, 239, 276] {
            let _ = dec(LinkType(lt), &buf[..len]);
        }
        // Make the Ethernet path reach IP often.
        buf[12] = 0x08;
        buf[13] = 0x00;
        buf[14] = 0x45;
        let _ = dec(LinkType::ETHERNET, &buf[..len]);
    }
}

#[test]
fn headers_stay_small() {
    // Decoded headers are returned by value on every packet; keep them within two cache
    // lines (they were 144 bytes before ICMP's quoted tuple and the MAC addresses became
    // on-demand reads).
    assert!(core::mem::size_of::<Headers>() <= 128, "{}", core::mem::size_of::<Headers>());
    assert!(core::mem::size_of::<DecodeError>() <= 16);
}

#[test]
fn fabricpath_and_vntag() {
    let inner = tcp4().build();
    // FabricPath: outer MACs, 0x8903, FTag/TTL, then the original frame.
    let mut fp = vec![0xaa; 12];
    fp.extend_from_slice(&[0x89, 0x03, 0x00, 0x3f]);
    fp.extend_from_slice(&inner);
    let h = dec(LinkType::ETHERNET, &fp).unwrap();
    assert_eq!(h.tcp().unwrap().dst_port, 80);
    assert_eq!(h.ip.unwrap().offset, 30);
    assert!(dec(LinkType::ETHERNET, &fp[..20]).unwrap_err().is_truncated());
    // VN-Tag, then 802.1Q, then IPv4.
    let mut vn = inner[..12].to_vec();
    vn.extend_from_slice(&[0x89, 0x26, 0, 0, 0, 0, 0x81, 0x00, 0x00, 0x0b, 0x08, 0x00]);
    vn.extend_from_slice(&inner[14..]);
    let h = dec(LinkType::ETHERNET, &vn).unwrap();
    assert_eq!(h.vlan.outer(), Some(11));
    assert_eq!(h.tcp().unwrap().dst_port, 80);
}

#[test]
fn ppp_framings() {
    let ip = tcp4().link(LinkType::RAW).build();
    for head in [&[0xff, 0x03, 0x00, 0x21][..], &[0x00, 0x21], &[0x21]] {
        let mut f = head.to_vec();
        f.extend_from_slice(&ip);
        let h = dec(LinkType::PPP, &f).unwrap_or_else(|e| panic!("{head:?}: {e}"));
        assert_eq!(h.tcp().unwrap().dst_port, 80, "{head:?}");
    }
    let mut lcp = vec![0xff, 0x03, 0xc0, 0x21];
    lcp.extend_from_slice(&[1, 1, 0, 4]);
    assert_eq!(dec(LinkType::PPP, &lcp).unwrap().ip, None);
}

#[test]
fn ieee802_11_data_behind_radiotap() {
    let ip = tcp4().link(LinkType::RAW).build();
    let mut wifi = vec![0x88, 0x01, 0, 0]; // QoS data, to-DS
    wifi.extend_from_slice(&[0x11; 20]); // three addresses, sequence control
    wifi.extend_from_slice(&[0, 0]); // QoS control
    wifi.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
    wifi.extend_from_slice(&ip);
    let h = dec(LinkType::IEEE802_11, &wifi).unwrap();
    assert_eq!(h.tcp().unwrap().dst_port, 80);
    let mut rt = vec![0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rt.extend_from_slice(&wifi);
    assert_eq!(dec(LinkType::IEEE802_11_RADIOTAP, &rt).unwrap().tcp().unwrap().dst_port, 80);
    // Encrypted and management frames are not IP.
    let mut enc = wifi.clone();
    enc[1] |= 0x40;
    assert_eq!(dec(LinkType::IEEE802_11, &enc).unwrap().ip, None);
    let mut beacon = wifi.clone();
    beacon[0] = 0x80;
    assert_eq!(dec(LinkType::IEEE802_11, &beacon).unwrap().ip, None);
    // A radiotap length past the frame is a truncation.
    assert!(dec(LinkType::IEEE802_11_RADIOTAP, &[0, 0, 200, 0, 1, 2]).unwrap_err().is_truncated());
}

#[test]
fn ipv6_zero_payload_length_is_empty_unless_jumbo() {
    let mut f = Frame::raw(v4("2001:db8::1"), v4("2001:db8::2"), 99).build();
    f.resize(60, 0);
    let h = dec(LinkType::ETHERNET, &f).unwrap();
    assert_eq!(h.ip.unwrap().ip_len, 40);
    assert_eq!(h.payload_len, 0);
}

/// A deterministic generator for the frame below (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `common` most of the time, a random value otherwise.
    fn mostly<T: Copy>(&mut self, common: T, random: impl FnOnce(u64) -> T) -> T {
        let r = self.next();
        if r % 4 == 0 {
            random(r >> 8)
        } else {
            common
        }
    }
}

#[test]
fn the_common_frame_path_decodes_as_the_layered_walk() {
    // Frames near the fast path's cases (Ethernet, IPv4 without options or IPv6 without
    // extension headers, TCP or UDP), each field either what it usually is or random,
    // with random cuts and wire lengths: where the fast path answers, the walk must give
    // the same headers; where it declines, both are the walk. The fuzz target `extract`
    // checks the same on arbitrary bytes.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut fast, mut declined) = ([0; 2], 0);
    for _ in 0..200_000 {
        let v6 = rng.next() % 2 == 0;
        let ip_hlen = if v6 { 40 } else { 20 };
        let l4 = 14 + ip_hlen;
        let proto = rng.mostly(6u8, |r| [6, 17, 1, 58, 0, 44, r as u8][(r % 7) as usize]);
        let l4_len = if proto == 6 { 20 } else { 8 };
        let payload = (rng.next() % 64) as usize;
        let mut f = vec![0u8; l4 + l4_len + payload];
        for b in f.iter_mut() {
            *b = rng.next() as u8;
        }
        let usual = if v6 { 0x86dd } else { 0x0800 };
        let ethertype = rng.mostly(usual, |r| [0x0800, 0x86dd, 0x8100, r as u16][(r % 4) as usize]);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        let ip_len = (f.len() - 14 - if v6 { 40 } else { 0 }) as u16;
        let len = rng.mostly(ip_len, |r| [0, 19, 20, ip_len + 1, r as u16][(r % 5) as usize]);
        if v6 {
            f[14] = rng.mostly(0x60, |r| r as u8);
            f[18..20].copy_from_slice(&len.to_be_bytes());
            f[20] = proto;
        } else {
            f[14] = rng.mostly(0x45, |r| r as u8);
            f[16..18].copy_from_slice(&len.to_be_bytes());
            let frag = rng.mostly(0x4000u16, |r| [0, 0x2000, 0x0001, r as u16][(r % 4) as usize]);
            f[20..22].copy_from_slice(&frag.to_be_bytes());
            f[23] = proto;
        }
        if proto == 6 {
            f[l4 + 12] = rng.mostly(0x50, |r| r as u8);
        } else {
            let udp_len = (8 + payload) as u16;
            let udp = rng.mostly(udp_len, |r| [0, 7, 8, udp_len + 1, r as u16][(r % 5) as usize]);
            f[l4 + 4..l4 + 6].copy_from_slice(&udp.to_be_bytes());
        }
        let cut = rng.mostly(f.len(), |r| (r as usize) % (f.len() + 1));
        let link = rng.mostly(LinkType::ETHERNET, |r| LinkType((r % 300) as u32));
        let extra = rng.mostly(0, |r| (r % 2000) as u32);
        let frame = &f[..cut];
        let view = PacketView::new(TS, link, frame).with_orig_len(frame.len() as u32 + extra);
        let layered = decode_any(&view);
        match decode_common(&view) {
            Some(h) => {
                fast[usize::from(v6)] += 1;
                assert_eq!(Ok(h), layered, "{frame:02x?} link {link:?} extra {extra}");
            }
            None => declined += 1,
        }
        assert_eq!(decode(&view), layered);
    }
    // Both sides of the fast path's checks were exercised, for both families.
    assert!(fast[0] > 10_000 && fast[1] > 10_000 && declined > 50_000, "{fast:?} {declined}");
}
