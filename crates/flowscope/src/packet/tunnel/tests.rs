//! Decapsulation tests: one hand-built frame per tunnel kind, every cut point, lying
//! lengths, and payloads that only look like a tunnel.

use core::net::IpAddr;

use super::*;
use crate::packet::{decode, LinkType, PacketView};
use crate::testkit::{flags, Frame};
use crate::time::Timestamp;

const TS: Timestamp = Timestamp::from_nanos(1_000_000_000);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The inner TCP segment every tunnel below carries.
fn inner_tcp() -> Frame {
    Frame::tcp(ip("192.168.1.1"), 1234, ip("192.168.1.2"), 80, flags::PSH_ACK, 10, 20)
        .payload(b"inner payload")
}

fn inner_ip() -> Vec<u8> {
    inner_tcp().link(LinkType::RAW).build()
}

fn inner_eth() -> Vec<u8> {
    inner_tcp().build()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    Frame::udp(ip("10.0.0.1"), 50000, ip("10.0.0.2"), dport).payload(payload).build()
}

fn ip_proto(proto: u8, payload: &[u8]) -> Vec<u8> {
    Frame::raw(ip("10.0.0.1"), ip("10.0.0.2"), proto).payload(payload).build()
}

/// Decode `frame`, find its tunnel with the default config, decode the inner packet.
fn open(frame: &[u8]) -> Option<Result<(Encap, Headers), DecodeError>> {
    let view = PacketView::new(TS, LinkType::ETHERNET, frame);
    let outer = decode(&view).ok()?;
    let found = encapsulated(frame, &outer, &TunnelConfig::default())?;
    Some(found.and_then(|e| decode_encapsulated(&view, &outer, &e).map(|h| (e, h))))
}

/// The inner TCP segment came out whole, with offsets into the outer frame.
fn assert_inner(frame: &[u8], kind: TunnelKind) {
    let (encap, h) = open(frame).expect("a tunnel").expect("readable");
    assert_eq!(encap.kind, kind);
    let ip4 = h.ip.unwrap();
    assert_eq!((ip4.src(), ip4.dst()), (ip("192.168.1.1"), ip("192.168.1.2")));
    assert_eq!(h.ports(), Some((1234, 80)));
    assert_eq!(h.payload(frame), b"inner payload");
    assert_eq!(h.frame_len as usize, frame.len());
    assert!(!h.has_mac);
}

#[test]
fn vxlan_carries_ethernet() {
    let f = udp(4789, &cat(&[&[0x08, 0, 0, 0, 0, 0x12, 0x34, 0], &inner_eth()]));
    assert_inner(&f, TunnelKind::Vxlan);
}

#[test]
fn vxlan_without_the_i_flag_is_plain_udp() {
    let f = udp(4789, &cat(&[&[0, 0, 0, 0, 0, 0, 0, 0], &inner_eth()]));
    assert!(open(&f).is_none());
}

#[test]
fn vxlan_ports_are_configurable() {
    let f = udp(8472, &cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &inner_eth()]));
    assert!(open(&f).is_none());
    let view = PacketView::new(TS, LinkType::ETHERNET, &f);
    let outer = decode(&view).unwrap();
    let config = TunnelConfig::default().with_vxlan_ports(&[4789, 8472]);
    assert_eq!(encapsulated(&f, &outer, &config).unwrap().unwrap().kind, TunnelKind::Vxlan);
}

#[test]
fn geneve_skips_options_and_reads_each_payload_type() {
    // Two words of options.
    let eth = cat(&[&[0x02, 0, 0x65, 0x58, 0, 0, 1, 0], &[0xaa; 8], &inner_eth()]);
    assert_inner(&udp(6081, &eth), TunnelKind::Geneve);
    let ipv4 = cat(&[&[0x00, 0, 0x08, 0x00, 0, 0, 1, 0], &inner_ip()]);
    assert_inner(&udp(6081, &ipv4), TunnelKind::Geneve);
    let unknown = cat(&[&[0x00, 0, 0x12, 0x34, 0, 0, 1, 0], &inner_ip()]);
    let e = open(&udp(6081, &unknown)).unwrap().unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::UnknownProtocol(0x1234));
    // Options longer than the datagram.
    let long = cat(&[&[0x3f, 0, 0x08, 0x00, 0, 0, 1, 0], &inner_ip()[..20]]);
    assert!(open(&udp(6081, &long)).unwrap().unwrap_err().is_truncated());
}

#[test]
fn gre_with_checksum_key_and_sequence() {
    let plain = cat(&[&[0, 0, 0x08, 0x00], &inner_ip()]);
    assert_inner(&ip_proto(47, &plain), TunnelKind::Gre);
    let cks = cat(&[&[0xb0, 0, 0x08, 0x00], &[0; 12], &inner_ip()]);
    assert_inner(&ip_proto(47, &cks), TunnelKind::Gre);
    let teb = cat(&[&[0x20, 0, 0x65, 0x58], &[0; 4], &inner_eth()]);
    assert_inner(&ip_proto(47, &teb), TunnelKind::Gre);
    // MPLS over GRE: one bottom-of-stack label, then IPv4.
    let mpls = cat(&[&[0, 0, 0x88, 0x47], &[0x00, 0x01, 0x01, 0x40], &inner_ip()]);
    assert_inner(&ip_proto(47, &mpls), TunnelKind::Gre);
}

#[test]
fn gre_rejects_routing_unknown_versions_and_protocols() {
    let routed = cat(&[&[0x40, 0, 0x08, 0x00], &inner_ip()]);
    assert!(open(&ip_proto(47, &routed)).unwrap().is_err());
    let v2 = cat(&[&[0, 2, 0x08, 0x00], &inner_ip()]);
    assert!(open(&ip_proto(47, &v2)).unwrap().is_err());
    let ipx = cat(&[&[0, 0, 0x81, 0x37], &inner_ip()]);
    let e = open(&ip_proto(47, &ipx)).unwrap().unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::UnknownProtocol(0x8137));
}

#[test]
fn erspan_types_one_two_and_three() {
    let t1 = cat(&[&[0, 0, 0x88, 0xbe], &inner_eth()]);
    assert_inner(&ip_proto(47, &t1), TunnelKind::Erspan);
    let t2 =
        cat(&[&[0x10, 0, 0x88, 0xbe], &[0, 0, 0, 7], &[0x10, 1, 0, 2, 0, 0, 0, 0], &inner_eth()]);
    assert_inner(&ip_proto(47, &t2), TunnelKind::Erspan);
    let t3 = cat(&[&[0, 0, 0x22, 0xeb], &[0x20, 1, 0, 2], &[0; 7], &[0x00], &inner_eth()]);
    assert_inner(&ip_proto(47, &t3), TunnelKind::Erspan);
    let t3_sub =
        cat(&[&[0, 0, 0x22, 0xeb], &[0x20, 1, 0, 2], &[0; 7], &[0x01], &[0; 8], &inner_eth()]);
    assert_inner(&ip_proto(47, &t3_sub), TunnelKind::Erspan);
    // A type II header with the wrong version nibble.
    let bad =
        cat(&[&[0x10, 0, 0x88, 0xbe], &[0, 0, 0, 7], &[0x30, 1, 0, 2, 0, 0, 0, 0], &inner_eth()]);
    assert!(open(&ip_proto(47, &bad)).unwrap().is_err());
}

#[test]
fn pptp_enhanced_gre_carries_ppp() {
    // Version 1, key (payload length + call id), sequence number, PPP with and without
    // the address/control bytes.
    let with_ac = cat(&[
        &[0x30, 0x01, 0x88, 0x0b],
        &[0, 40, 0, 1],
        &[0, 0, 0, 5],
        &[0xff, 0x03, 0x00, 0x21],
        &inner_ip(),
    ]);
    assert_inner(&ip_proto(47, &with_ac), TunnelKind::Gre);
    let compressed = cat(&[
        &[0x30, 0x81, 0x88, 0x0b],
        &[0, 40, 0, 1],
        &[0, 0, 0, 5],
        &[0, 0, 0, 4],
        &[0x21],
        &inner_ip(),
    ]);
    assert_inner(&ip_proto(47, &compressed), TunnelKind::Gre);
    // An acknowledgment alone carries nothing.
    let ack_only = cat(&[&[0x20, 0x81, 0x88, 0x0b], &[0, 0, 0, 1], &[0, 0, 0, 4]]);
    assert!(open(&ip_proto(47, &ack_only)).unwrap().is_err());
}

#[test]
fn gtp_u_with_and_without_extension_headers() {
    let body = inner_ip();
    let len = |extra: usize| ((body.len() + extra) as u16).to_be_bytes();
    let plain = cat(&[&[0x30, 0xff], &len(0), &[0, 0, 0, 1], &body]);
    assert_inner(&udp(2152, &plain), TunnelKind::GtpU);
    // E flag: sequence/N-PDU/next-type word, then one 4-byte extension (PDU session
    // container), then the packet.
    let ext =
        cat(&[&[0x34, 0xff], &len(8), &[0, 0, 0, 1], &[0, 0, 0, 0x85], &[1, 0x10, 0x09, 0], &body]);
    assert_inner(&udp(2152, &ext), TunnelKind::GtpU);
    // An extension whose length runs past the datagram.
    let cut = cat(&[&[0x34, 0xff], &len(8), &[0, 0, 0, 1], &[0, 0, 0, 0x85], &[200, 0x10]]);
    assert!(open(&udp(2152, &cut)).unwrap().unwrap_err().is_truncated());
    // A zero extension length would never advance.
    let zero =
        cat(&[&[0x34, 0xff], &len(8), &[0, 0, 0, 1], &[0, 0, 0, 0x85], &[0, 0, 0, 0], &body]);
    assert!(open(&udp(2152, &zero)).unwrap().is_err());
    // Echo request (type 1) is signalling, not user data.
    let echo = cat(&[&[0x32, 0x01], &[0, 4], &[0, 0, 0, 0], &[0, 1, 0, 0]]);
    assert!(open(&udp(2152, &echo)).is_none());
}

#[test]
fn ip_in_ip_both_families() {
    assert_inner(&ip_proto(4, &inner_ip()), TunnelKind::IpInIp);
    let six = Frame::tcp(ip("2001:db8::1"), 1234, ip("2001:db8::2"), 80, flags::PSH_ACK, 1, 1)
        .payload(b"six")
        .link(LinkType::RAW)
        .build();
    let f = ip_proto(41, &six);
    let (encap, h) = open(&f).unwrap().unwrap();
    assert_eq!(encap.kind, TunnelKind::IpInIp);
    assert!(h.ip.unwrap().v6);
    assert_eq!(h.payload(&f), b"six");
    // Protocol 4 announcing IPv4 but carrying IPv6.
    let e = open(&ip_proto(4, &six)).unwrap().unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::BadVersion(6));
}

#[test]
fn teredo_with_origin_indication_and_on_other_ports() {
    let six = Frame::udp(ip("2001:0:4137:9e50::1"), 1000, ip("2001:db8::2"), 53)
        .payload(b"q")
        .link(LinkType::RAW)
        .build();
    let origin = cat(&[&[0, 0, 0x12, 0x34, 1, 2, 3, 4], &six]);
    let (e, h) = open(&udp(3544, &origin)).unwrap().unwrap();
    assert_eq!(e.kind, TunnelKind::Teredo);
    assert_eq!(h.ports(), Some((1000, 53)));
    // Between two clients, on ports of their own: a Teredo address is on one side.
    let (e, _) = open(&udp(40000, &six)).unwrap().unwrap();
    assert_eq!(e.kind, TunnelKind::Teredo);
    // Plain IPv6 addresses on an arbitrary port are not Teredo.
    let not =
        Frame::udp(ip("2001:db8::1"), 1000, ip("2001:db8::2"), 53).link(LinkType::RAW).build();
    assert!(open(&udp(40000, &not)).is_none());
    // On the Teredo port, anything not leading to IPv6 is left alone.
    assert!(open(&udp(3544, b"not ipv6 at all")).is_none());
}

#[test]
fn ayiya_forward_only() {
    // 16-byte identity (2^4), one word of signature, opcode 1, next header 4.
    let fwd = cat(&[&[0x41, 0x10, 0x01, 4], &[0; 4], &[7; 16], &[9; 4], &inner_ip()]);
    assert_inner(&udp(5072, &fwd), TunnelKind::Ayiya);
    let echo = cat(&[&[0x41, 0x10, 0x02, 4], &[0; 4], &[7; 16], &[9; 4], &inner_ip()]);
    assert!(open(&udp(5072, &echo)).is_none());
}

#[test]
fn mpls_pseudowire_with_control_word_carries_ethernet() {
    let inner = inner_eth();
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x88, 0x47, 0x00, 0x01, 0x01, 0x40, 0, 0, 0, 0]);
    f.extend_from_slice(&inner);
    let h = decode(&PacketView::new(TS, LinkType::ETHERNET, &f)).unwrap();
    assert_eq!(h.ports(), Some((1234, 80)));
    assert_eq!(h.payload(&f), b"inner payload");
    assert_eq!(h.mpls_depth, 1);
}

#[test]
fn inner_lengths_cannot_reach_past_the_outer_payload() {
    // The inner IPv4 header claims 200 bytes more than the tunnel carries; the outer
    // frame has Ethernet padding after it that must not count.
    let mut body = inner_ip();
    let total = u16::from_be_bytes([body[2], body[3]]) + 200;
    body[2..4].copy_from_slice(&total.to_be_bytes());
    let mut f = ip_proto(4, &body);
    f.extend_from_slice(&[0u8; 300]);
    let e = open(&f).unwrap().unwrap_err();
    assert_eq!(e.layer, Layer::Ipv4);
    assert!(matches!(e.kind, DecodeErrorKind::BadTotalLength(_)));
}

#[test]
fn every_cut_of_every_tunnel_is_an_answer_never_a_panic() {
    let frames = [
        udp(4789, &cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &inner_eth()])),
        udp(6081, &cat(&[&[0x02, 0, 0x65, 0x58, 0, 0, 1, 0], &[0; 8], &inner_eth()])),
        udp(
            2152,
            &cat(&[&[0x34, 0xff, 0, 60, 0, 0, 0, 1], &[0, 0, 0, 0x85], &[1, 0, 0, 0], &inner_ip()]),
        ),
        udp(5072, &cat(&[&[0x41, 0x10, 0x01, 4], &[0; 4], &[7; 16], &[9; 4], &inner_ip()])),
        ip_proto(47, &cat(&[&[0xb0, 0, 0x08, 0x00], &[0; 12], &inner_ip()])),
        ip_proto(
            47,
            &cat(&[&[0, 0, 0x22, 0xeb], &[0x20, 1, 0, 2], &[0; 7], &[1], &[0; 8], &inner_eth()]),
        ),
        ip_proto(
            47,
            &cat(&[&[0x30, 0x81, 0x88, 0x0b], &[0, 40, 0, 1], &[0; 8], &[0x21], &inner_ip()]),
        ),
        ip_proto(4, &inner_ip()),
    ];
    let mut answers = 0;
    for f in &frames {
        assert!(open(f).unwrap().is_ok());
        for cut in 0..f.len() {
            // Cut as a capture's snaplen would (the wire length stays).
            let view =
                PacketView::new(TS, LinkType::ETHERNET, &f[..cut]).with_orig_len(f.len() as u32);
            let Ok(outer) = decode(&view) else { continue };
            if let Some(found) = encapsulated(view.frame, &outer, &TunnelConfig::default()) {
                let _ = found.and_then(|e| decode_encapsulated(&view, &outer, &e));
                answers += 1;
            }
        }
    }
    assert!(answers > 300, "{answers}");
}

#[test]
fn disabled_config_finds_nothing() {
    let f = udp(4789, &cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &inner_eth()]));
    let view = PacketView::new(TS, LinkType::ETHERNET, &f);
    let outer = decode(&view).unwrap();
    let off = TunnelConfig { vxlan_ports: [0; 4], ..TunnelConfig::default() };
    assert!(encapsulated(&f, &outer, &off).is_none());
    assert!(!TunnelConfig::disabled().enabled());
}

#[test]
fn pppoe_with_a_compressed_protocol_field() {
    for proto in [&[0x21u8][..], &[0x00, 0x21][..]] {
        let inner = inner_ip();
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0x64, 0x11, 0x00, 0x00, 0x2d]);
        f.extend_from_slice(&((inner.len() + proto.len()) as u16).to_be_bytes());
        f.extend_from_slice(proto);
        f.extend_from_slice(&inner);
        let h = decode(&PacketView::new(TS, LinkType::ETHERNET, &f)).unwrap();
        assert_eq!(h.ports(), Some((1234, 80)));
        assert_eq!(h.payload(&f), b"inner payload");
    }
}
