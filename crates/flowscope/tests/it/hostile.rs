//! Hostile headers, each through a flow tracker: the packet is refused with the exact
//! decode error for what is wrong, counted once as malformed, and never creates a flow.

use std::net::IpAddr;

use flowscope::extract::{FiveTuple, Unmatched};
use flowscope::packet::{DecodeError, DecodeErrorKind, Layer, LinkType, PacketView};
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::{Disposition, FlowTracker, FlowTrackerConfig};
use flowscope::Timestamp;

fn tcp4() -> Frame {
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    Frame::tcp(a, 40000, b, 80, flags::ACK, 1, 1).payload(b"data")
}

fn tcp6() -> Frame {
    let (a, b): (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
    Frame::tcp(a, 40000, b, 80, flags::ACK, 1, 1).payload(b"data")
}

fn udp4(payload: &[u8]) -> Frame {
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    Frame::udp(a, 5000, b, 53).payload(payload)
}

/// Ethernet header 14, IPv4 header 20 in the frames above.
const IP: usize = 14;
const L4: usize = 14 + 20;

fn patched(f: Frame, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = f.build();
    edit(&mut bytes);
    bytes
}

fn cases() -> Vec<(&'static str, Vec<u8>, DecodeError)> {
    let err = |layer, kind| DecodeError { layer, kind };
    let mut cases = vec![
        (
            "IPv4 IHL 4 (< 5)",
            patched(tcp4(), |b| b[IP] = 0x44),
            err(Layer::Ipv4, DecodeErrorKind::BadIhl(4)),
        ),
        (
            "IPv4 IHL 0",
            patched(tcp4(), |b| b[IP] = 0x40),
            err(Layer::Ipv4, DecodeErrorKind::BadIhl(0)),
        ),
        (
            "IPv4 total length below its header",
            patched(tcp4(), |b| b[IP + 2..IP + 4].copy_from_slice(&19u16.to_be_bytes())),
            err(Layer::Ipv4, DecodeErrorKind::BadTotalLength(19)),
        ),
        (
            "IPv4 total length beyond the frame on the wire",
            patched(tcp4(), |b| b[IP + 2..IP + 4].copy_from_slice(&4000u16.to_be_bytes())),
            err(Layer::Ipv4, DecodeErrorKind::BadTotalLength(4000)),
        ),
        (
            "IPv6 payload length beyond the frame on the wire",
            patched(tcp6(), |b| b[IP + 4..IP + 6].copy_from_slice(&9000u16.to_be_bytes())),
            err(Layer::Ipv6, DecodeErrorKind::BadPayloadLength(9000)),
        ),
        (
            "TCP data offset 4 (< 5)",
            patched(tcp4(), |b| b[L4 + 12] = 0x40),
            err(Layer::Tcp, DecodeErrorKind::BadDataOffset(4)),
        ),
        (
            "TCP data offset 15, beyond the segment",
            patched(tcp4(), |b| b[L4 + 12] = 0xf0),
            err(Layer::Tcp, DecodeErrorKind::BadDataOffset(15)),
        ),
        (
            "UDP length below its header",
            patched(udp4(b"abcd"), |b| b[L4 + 4..L4 + 6].copy_from_slice(&7u16.to_be_bytes())),
            err(Layer::Udp, DecodeErrorKind::BadLength(7)),
        ),
        (
            "UDP length beyond the IP payload",
            patched(udp4(b"abcd"), |b| b[L4 + 4..L4 + 6].copy_from_slice(&400u16.to_be_bytes())),
            err(Layer::Udp, DecodeErrorKind::BadLength(400)),
        ),
    ];
    // An IPv6 extension-header loop: destination options pointing at destination
    // options, more times than the decoder follows.
    let mut looped = tcp6();
    for _ in 0..40 {
        looped = looped.ipv6_ext(60, &[0; 6]);
    }
    cases.push((
        "IPv6 extension-header loop",
        looped.build(),
        err(Layer::Ipv6Ext, DecodeErrorKind::TooManyExtHeaders),
    ));
    // A chain that says it goes on past the end of the frame: the last header claims
    // 8 * (1 + 200) bytes of a complete (not snapped) datagram, a content fault.
    let chain = patched(tcp6().ipv6_ext(60, &[0; 6]), |b| b[IP + 40 + 1] = 200);
    cases.push((
        "IPv6 extension header longer than the frame",
        chain,
        err(Layer::Ipv6Ext, DecodeErrorKind::BadLength(8 * 201)),
    ));
    // 17 MPLS labels, none with the bottom-of-stack bit.
    let mpls = patched(tcp4(), |b| {
        b[12..14].copy_from_slice(&0x8847u16.to_be_bytes());
        let stack: Vec<u8> = (0..17).flat_map(|_| [0, 0x64, 0, 64]).collect();
        b.splice(14..14, stack);
    });
    cases.push((
        "MPLS stack without bottom-of-stack",
        mpls,
        err(Layer::Mpls, DecodeErrorKind::TooManyMplsLabels),
    ));
    // 802.1Q tags nested 64 deep.
    let mut deep = tcp4();
    for id in 0..64 {
        deep = deep.vlan(id + 1);
    }
    cases.push((
        "802.1Q tags nested 64 deep",
        deep.build(),
        err(Layer::Vlan, DecodeErrorKind::TooManyVlanTags),
    ));
    cases
}

#[test]
fn each_hostile_header_is_refused_with_its_reason_and_counted() {
    let mut tracker: FlowTracker<FiveTuple> =
        FlowTracker::new(FiveTuple::default(), FlowTrackerConfig::default());
    let ts = Timestamp::from_secs_micros(1_700_000_000, 0);
    let cases = cases();
    for (i, (name, frame, want)) in cases.iter().enumerate() {
        let view = PacketView::new(ts, LinkType::ETHERNET, frame);
        let got = tracker.handle_packet(&view, &mut |_| {});
        assert_eq!(got, Disposition::Unmatched(Unmatched::Malformed(*want)), "{name}");
        let s = tracker.stats();
        assert_eq!(s.unmatched.malformed, i as u64 + 1, "{name}: counted once, as malformed");
        assert_eq!(s.unmatched.total(), i as u64 + 1, "{name}: under no other reason");
        assert_eq!(s.flows_created, 0, "{name}: created a flow");
    }
    // And the same frames, intact, are keyed.
    let fine = [tcp4().build(), tcp6().build(), udp4(b"abcd").build()];
    for f in &fine {
        let got = tracker.handle_packet(&PacketView::new(ts, LinkType::ETHERNET, f), &mut |_| {});
        assert!(matches!(got, Disposition::Tracked { .. }));
    }
    assert_eq!(tracker.stats().unmatched.total(), cases.len() as u64);
}
