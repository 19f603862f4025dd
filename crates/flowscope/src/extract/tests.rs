use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::packet::{LinkType, PacketView};
use crate::testkit::{flags, Frame};
use crate::Timestamp;

const TS: Timestamp = Timestamp::from_nanos(5);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn run<E: FlowExtractor>(e: &E, f: &[u8]) -> Result<Extracted<E::Key>, Unmatched> {
    e.extract(&PacketView::new(TS, LinkType::ETHERNET, f))
}

#[test]
fn icmp_request_and_reply_share_a_key() {
    let req = Frame::icmp(ip("10.0.0.1"), ip("10.0.0.2"), 8, 0, [0, 1, 0, 1]).build();
    let rep = Frame::icmp(ip("10.0.0.2"), ip("10.0.0.1"), 0, 0, [0, 1, 0, 1]).build();
    let a = run(&FiveTuple::new(), &req).unwrap();
    let b = run(&FiveTuple::new(), &rep).unwrap();
    assert_eq!(a.key, b.key);
    assert_ne!(a.orientation, b.orientation);
    assert_eq!(a.key.src(a.orientation), (ip("10.0.0.1"), 8));
    assert_eq!(a.key.dst(a.orientation), (ip("10.0.0.2"), 0));
    assert_eq!(a.l4(), L4Proto::Icmp);

    let v6req = Frame::icmp(ip("fe80::1"), ip("fe80::2"), 128, 0, [0; 4]).build();
    let v6rep = Frame::icmp(ip("fe80::2"), ip("fe80::1"), 129, 0, [0; 4]).build();
    assert_eq!(
        run(&FiveTuple::new(), &v6req).unwrap().key,
        run(&FiveTuple::new(), &v6rep).unwrap().key
    );
}

#[test]
fn vlan_in_key_splits_flows() {
    let a = Frame::udp(ip("10.0.0.1"), 1, ip("10.0.0.2"), 2).vlan(10).build();
    let b = Frame::udp(ip("10.0.0.1"), 1, ip("10.0.0.2"), 2).vlan(20).build();
    let plain = FiveTuple::new();
    assert_eq!(run(&plain, &a).unwrap().key, run(&plain, &b).unwrap().key);
    let split = FiveTuple::new().with_vlan_in_key(true);
    let ka = run(&split, &a).unwrap().key;
    assert_ne!(ka, run(&split, &b).unwrap().key);
    assert_eq!(ka.vlan(), 10);
}

#[test]
fn unmatched_reasons() {
    let later =
        Frame::raw(ip("10.0.0.1"), ip("10.0.0.2"), 6).payload(&[0; 16]).fragment(8, false, 3);
    assert_eq!(run(&FiveTuple::new(), &later.build()).unwrap_err(), Unmatched::Fragment);
    // IpPair keys fragments like any other packet of the pair.
    assert!(run(&IpPair::default(), &later.build()).is_ok());

    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    assert_eq!(run(&FiveTuple::new(), &arp).unwrap_err(), Unmatched::NotIp { ethertype: 0x0806 });
    assert!(run(&MacPair::default(), &arp).is_ok());

    let raw = Frame::udp(ip("10.0.0.1"), 1, ip("10.0.0.2"), 2).link(LinkType::RAW).build();
    let view = PacketView::new(TS, LinkType::RAW, &raw);
    assert_eq!(MacPair::default().extract(&view).unwrap_err(), Unmatched::NoMacAddress);
    let view = PacketView::new(TS, LinkType(9999), &raw);
    assert_eq!(FiveTuple::new().extract(&view).unwrap_err(), Unmatched::UnsupportedLinkType(9999));
    let u = Unmatched::Malformed(
        crate::packet::decode(&PacketView::new(TS, LinkType::ETHERNET, &[0; 3])).unwrap_err(),
    );
    assert_eq!(u.as_str(), "malformed");
    assert_eq!(u.to_string(), "malformed: link: truncated (need 14 bytes, have 3)");
}

#[test]
fn other_protocols_key_without_ports() {
    let gre = Frame::raw(ip("10.0.0.1"), ip("10.0.0.2"), 47).payload(&[0; 8]).build();
    let e = run(&FiveTuple::new(), &gre).unwrap();
    assert_eq!(e.key.proto(), 47);
    assert_eq!(e.key.lo().1, 0);
    assert_eq!(e.l4(), L4Proto::Other);
    assert_eq!(e.headers.payload_len, 8);
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn same_family(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    match (a, b) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => {
            (a, IpAddr::V4(Ipv4Addr::from(v6.octets()[12..16].try_into().unwrap_or([0; 4]))))
        }
        (IpAddr::V6(_), IpAddr::V4(v4)) => (a, IpAddr::V6(v4.to_ipv6_mapped())),
        _ => (a, b),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), ..ProptestConfig::default() })]

    /// Both directions give the same key and opposite orientations, and the key remembers
    /// who sent what.
    #[test]
    fn five_tuple_keys_are_canonical(a in any_ip(), b in any_ip(), pa: u16, pb: u16, proto: u8, vlan: u16) {
        let (a, b) = same_family(a, b);
        let (k1, o1) = FiveTupleKey::new(a, pa, b, pb, proto, vlan);
        let (k2, o2) = FiveTupleKey::new(b, pb, a, pa, proto, vlan);
        prop_assert_eq!(k1, k2);
        if (a, pa) != (b, pb) {
            prop_assert_eq!(o1, o2.flip());
        }
        prop_assert_eq!(k1.src(o1), (a, pa));
        prop_assert_eq!(k1.dst(o1), (b, pb));
        prop_assert!(k1.lo() <= k1.hi() || a.is_ipv4() != k1.lo().0.is_ipv4());
        prop_assert_eq!(k1.community_id(0, o1), k2.community_id(0, o1));
        prop_assert_eq!((k1.proto(), k1.vlan(), k1.is_ipv6()), (proto, vlan, a.is_ipv6()));
    }

    /// Keys order as their fields do: low endpoint, high endpoint (addresses as words,
    /// IPv4 in the top of the first), then protocol, family and VLAN.
    #[test]
    fn five_tuple_keys_order_by_their_fields(
        a in any_ip(), b in any_ip(), c in any_ip(), d in any_ip(),
        ports: [u16; 4], protos: [u8; 2], vlans: [u16; 2], same: bool,
    ) {
        let (a, b) = same_family(a, b);
        let (c, d) = if same { (a, b) } else { same_family(c, d) };
        let (k, _) = FiveTupleKey::new(a, ports[0], b, ports[1], protos[0], vlans[0]);
        // With `same`, the endpoints are equal and the protocol and VLAN decide.
        let (pc, pd) = if same { (ports[0], ports[1]) } else { (ports[2], ports[3]) };
        let (m, _) = FiveTupleKey::new(c, pc, d, pd, protos[1], vlans[1]);
        let words = |ip: IpAddr| -> [u64; 2] {
            match ip {
                IpAddr::V4(v4) => [u64::from(u32::from(v4)) << 32, 0],
                IpAddr::V6(v6) => {
                    let n = u128::from(v6);
                    [(n >> 64) as u64, n as u64]
                }
            }
        };
        let fields = |k: &FiveTupleKey| {
            let ((lo, lp), (hi, hp)) = (k.lo(), k.hi());
            (words(lo), words(hi), lp, hp, k.proto(), k.is_ipv6(), k.vlan())
        };
        prop_assert_eq!(k.cmp(&m), fields(&k).cmp(&fields(&m)));
        prop_assert_eq!(k == m, fields(&k) == fields(&m));
    }

    #[test]
    fn ip_pair_keys_are_canonical(a in any_ip(), b in any_ip()) {
        let (a, b) = same_family(a, b);
        let (k1, o1) = IpPairKey::new(a, b, 0);
        let (k2, o2) = IpPairKey::new(b, a, 0);
        prop_assert_eq!(k1, k2);
        if a != b { prop_assert_eq!(o1, o2.flip()); }
    }

    #[test]
    fn mac_pair_keys_are_canonical(a: [u8; 6], b: [u8; 6], vlan: u16) {
        let (k1, o1) = MacPairKey::new(a, b, vlan);
        let (k2, o2) = MacPairKey::new(b, a, vlan);
        prop_assert_eq!(k1, k2);
        if a != b { prop_assert_eq!(o1, o2.flip()); }
    }

    /// Built frames round-trip through the extractor in both directions.
    #[test]
    fn built_tcp_frames_key_consistently(a: [u8; 4], b: [u8; 4], pa: u16, pb: u16, seq: u32, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let (a, b) = (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)));
        let fwd = Frame::tcp(a, pa, b, pb, flags::PSH_ACK, seq, 0).payload(&payload).build();
        let rev = Frame::tcp(b, pb, a, pa, flags::ACK, 0, seq).build();
        let x = run(&FiveTuple::new(), &fwd).unwrap();
        let y = run(&FiveTuple::new(), &rev).unwrap();
        prop_assert_eq!(x.key, y.key);
        prop_assert_eq!(x.headers.payload(&fwd), &payload[..]);
        prop_assert_eq!(x.tcp().unwrap().seq, seq);
    }
}
