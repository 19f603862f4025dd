//! Driver tests: packet scripts through tracking and reassembly together.

use core::net::IpAddr;

use super::*;
use crate::event::{ConnState, EndReason, FlowEvent};
use crate::extract::{FiveTuple, FiveTupleKey};
use crate::packet::{LinkType, TcpFlags};
use crate::testkit::{flags::*, Frame};
use crate::tracker::OverflowPolicy;

/// Owned copies of driver events.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Started,
    Established,
    Ended {
        reason: EndReason,
        conn_state: ConnState,
        history: String,
        stats: crate::event::FlowStats,
    },
    Anomaly(AnomalyKind),
    Data(FlowSide, u64, Vec<u8>),
    Gap(FlowSide, u64, u64),
    Fin(FlowSide),
    Rst(FlowSide),
}

struct Script {
    driver: FlowDriver<FiveTuple>,
    events: Vec<Ev>,
    now_us: u64,
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    last: Option<Disposition>,
}

fn own(e: DriverEvent<'_, FiveTupleKey>) -> Ev {
    match e {
        DriverEvent::Flow(FlowEvent::Started { .. }) => Ev::Started,
        DriverEvent::Flow(FlowEvent::Established { .. }) => Ev::Established,
        DriverEvent::Flow(FlowEvent::Ended { reason, conn_state, history, stats, .. }) => {
            Ev::Ended { reason, conn_state, history: history.as_str().to_string(), stats }
        }
        DriverEvent::Flow(FlowEvent::Anomaly { kind, .. }) => Ev::Anomaly(kind),
        DriverEvent::Data { side, offset, bytes, .. } => Ev::Data(side, offset, bytes.to_vec()),
        DriverEvent::Gap { side, offset, len, .. } => Ev::Gap(side, offset, len),
        DriverEvent::Fin { side, .. } => Ev::Fin(side),
        DriverEvent::Rst { side, .. } => Ev::Rst(side),
    }
}

impl Script {
    fn new(config: FlowTrackerConfig) -> Self {
        Script {
            driver: FlowDriver::new(FiveTuple::new(), config).with_emit_anomalies(true),
            events: Vec::new(),
            now_us: 1_000_000,
            client: ("10.0.0.1".parse().unwrap(), 40000),
            server: ("10.0.0.2".parse().unwrap(), 80),
            last: None,
        }
    }

    fn send(&mut self, f: Vec<u8>) -> &mut Self {
        self.now_us += 1000;
        let view =
            PacketView::new(Timestamp::from_nanos(self.now_us * 1000), LinkType::ETHERNET, &f);
        let events = &mut self.events;
        self.last = Some(
            self.driver
                .handle_packet(&view, &mut |e: DriverEvent<'_, FiveTupleKey>| events.push(own(e))),
        );
        self
    }

    fn c(&mut self, flags: u16, seq: u32, ack: u32, data: &[u8]) -> &mut Self {
        let (c, s) = (self.client, self.server);
        self.send(Frame::tcp(c.0, c.1, s.0, s.1, flags, seq, ack).payload(data).build())
    }

    fn s(&mut self, flags: u16, seq: u32, ack: u32, data: &[u8]) -> &mut Self {
        let (c, s) = (self.client, self.server);
        self.send(Frame::tcp(s.0, s.1, c.0, c.1, flags, seq, ack).payload(data).build())
    }

    fn handshake(&mut self) -> &mut Self {
        self.c(SYN, 100, 0, b"").s(SYN_ACK, 5000, 101, b"").c(ACK, 101, 5001, b"")
    }

    fn finish(&mut self) -> Vec<Ev> {
        let events = &mut self.events;
        self.driver.finish(&mut |e: DriverEvent<'_, FiveTupleKey>| events.push(own(e)));
        let st = self.driver.tracker_stats();
        assert_eq!(st.inputs(), st.outcomes(), "ledger");
        std::mem::take(&mut self.events)
    }

    fn stream(events: &[Ev], side: FlowSide) -> Vec<u8> {
        events
            .iter()
            .filter_map(|e| match e {
                Ev::Data(s, _, d) if *s == side => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

#[test]
fn in_order_streams_both_ways_with_fins() {
    let mut s = Script::new(FlowTrackerConfig::default());
    s.handshake()
        .c(PSH_ACK, 101, 5001, b"GET / HTTP/1.1\r\n\r\n")
        .s(PSH_ACK, 5001, 119, b"HTTP/1.1 200 OK\r\n")
        .s(PSH_ACK, 5018, 119, b"\r\nbody")
        .c(FIN_ACK, 119, 5024, b"")
        .s(FIN_ACK, 5024, 120, b"")
        .c(ACK, 120, 5025, b"");
    let ev = s.finish();
    assert_eq!(Script::stream(&ev, FlowSide::Initiator), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(Script::stream(&ev, FlowSide::Responder), b"HTTP/1.1 200 OK\r\n\r\nbody");
    assert!(
        ev.contains(&Ev::Fin(FlowSide::Initiator)) && ev.contains(&Ev::Fin(FlowSide::Responder))
    );
    let Some(Ev::Ended { reason, conn_state, history, stats }) = ev.last() else {
        panic!("{ev:?}")
    };
    // The server never sends a bare ACK here, so no `a`.
    assert_eq!(
        (*reason, *conn_state, history.as_str()),
        (EndReason::Fin, ConnState::Sf, "ShADdFf")
    );
    assert_eq!((stats.initiator.payload_bytes, stats.responder.payload_bytes), (18, 23));
    assert_eq!((stats.initiator.missed_bytes, stats.responder.missed_bytes), (0, 0));
    assert!(!ev.iter().any(|e| matches!(e, Ev::Gap(..) | Ev::Anomaly(_))));
}

#[test]
fn reordered_data_is_released_in_order_with_one_anomaly() {
    let mut s = Script::new(FlowTrackerConfig::default());
    s.handshake().c(PSH_ACK, 106, 5001, b"world").c(PSH_ACK, 101, 5001, b"hello");
    let ev = s.finish();
    assert_eq!(Script::stream(&ev, FlowSide::Initiator), b"helloworld");
    assert_eq!(ev.iter().filter(|e| **e == Ev::Anomaly(AnomalyKind::OutOfOrderSegment)).count(), 1);
    let Some(Ev::Ended { stats, .. }) = ev.last() else { panic!() };
    assert_eq!(stats.initiator.high_watermark_bytes, 5);
}

#[test]
fn rewritten_retransmissions_are_counted_in_the_sides_stats() {
    let script = |window: usize| {
        let mut s = Script::new(FlowTrackerConfig::default().with_retransmit_check_bytes(window));
        s.handshake()
            .c(PSH_ACK, 101, 5001, b"hello")
            .c(PSH_ACK, 101, 5001, b"HELLO") // delivered bytes, rewritten
            .s(PSH_ACK, 5006, 106, b"world") // ahead of a hole
            .s(PSH_ACK, 5006, 106, b"WORLD") // buffered bytes, rewritten
            .s(PSH_ACK, 5001, 106, b"12345");
        let ev = s.finish();
        assert_eq!(Script::stream(&ev, FlowSide::Initiator), b"hello");
        assert_eq!(Script::stream(&ev, FlowSide::Responder), b"12345world");
        let Some(Ev::Ended { stats, .. }) = ev.last() else { panic!("{ev:?}") };
        (stats.initiator.inconsistent_segments, stats.responder.inconsistent_segments)
    };
    // Buffered bytes are always compared; delivered ones only with a window.
    assert_eq!(script(0), (0, 1));
    assert_eq!(script(1500), (1, 1));
}

#[test]
fn lost_segment_becomes_a_gap_with_zeek_letter() {
    let mut s = Script::new(FlowTrackerConfig::default());
    s.handshake()
        .c(PSH_ACK, 101, 5001, b"aaaa")
        .c(PSH_ACK, 109, 5001, b"cccc") // 105..109 never captured
        .s(ACK, 5001, 113, b"")
        .c(FIN_ACK, 113, 5001, b"")
        .s(FIN_ACK, 5001, 114, b"");
    let ev = s.finish();
    assert!(ev.contains(&Ev::Gap(FlowSide::Initiator, 4, 4)), "{ev:?}");
    assert_eq!(Script::stream(&ev, FlowSide::Initiator), b"aaaacccc");
    let Some(Ev::Ended { stats, history, .. }) = ev.last() else { panic!() };
    assert_eq!(stats.initiator.missed_bytes, 4);
    assert_eq!(stats.initiator.payload_bytes, 12);
    // The server's ACK of the client's FIN declares the hole (where Zeek reports its
    // content gap): `G` comes with that packet.
    assert_eq!(history, "ShADaFfG");
    assert_eq!(s.driver.stats().missed_bytes, 4);
}

#[test]
fn unseen_response_before_fin_is_missed() {
    // Zeek's miss-end-data: the server's data never captured, its FIN is.
    let mut s = Script::new(FlowTrackerConfig::default());
    s.handshake().c(PSH_ACK, 101, 5001, b"req").s(ACK, 5001, 104, b"").s(FIN_ACK, 7903, 104, b"");
    let ev = s.finish();
    let Some(Ev::Ended { stats, .. }) = ev.last() else { panic!() };
    assert_eq!(stats.responder.missed_bytes, 2902);
    assert_eq!(stats.responder.payload_bytes, 2902);
    assert!(ev.contains(&Ev::Gap(FlowSide::Responder, 0, 2902)));
}

#[test]
fn drop_flow_at_the_cap_ends_the_flow_and_absorbs_the_rest() {
    let cfg = FlowTrackerConfig::default()
        .with_max_buffer(8)
        .with_overflow_policy(OverflowPolicy::DropFlow);
    let mut s = Script::new(cfg);
    s.handshake().c(PSH_ACK, 111, 5001, b"later1").c(PSH_ACK, 121, 5001, b"later2");
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, Ev::Ended { reason: EndReason::BufferOverflow, .. })));
    assert!(s.events.contains(&Ev::Anomaly(AnomalyKind::BufferOverflow)));
    s.c(PSH_ACK, 101, 5001, b"0123456789");
    assert!(matches!(s.last, Some(Disposition::Dropped { .. })), "{:?}", s.last);
    s.s(ACK, 5001, 111, b"");
    let ev = s.finish();
    // One flow, started and reported once; the absorbed packets started nothing.
    assert_eq!(ev.iter().filter(|e| matches!(e, Ev::Started)).count(), 1);
    assert_eq!(ev.iter().filter(|e| matches!(e, Ev::Ended { .. })).count(), 1);
    assert_eq!(s.driver.tracker_stats().flows_created, 1);
    assert_eq!(s.driver.tracker_stats().dropped, 2);
    assert_eq!(s.driver.stats().overflow_aborts, 1);
    assert_eq!(s.driver.stats().buffered_bytes, 0);
}

#[test]
fn sliding_window_at_the_cap_skips_the_hole() {
    let cfg = FlowTrackerConfig::default().with_max_buffer(8);
    let mut s = Script::new(cfg);
    s.handshake().c(PSH_ACK, 111, 5001, b"klmno").c(PSH_ACK, 121, 5001, b"uvwxy");
    let ev = s.finish();
    assert!(ev.contains(&Ev::Gap(FlowSide::Initiator, 0, 10)), "{ev:?}");
    assert!(ev.contains(&Ev::Anomaly(AnomalyKind::BufferOverflow)));
    assert_eq!(Script::stream(&ev, FlowSide::Initiator), b"klmnouvwxy");
    let Some(Ev::Ended { reason, stats, .. }) = ev.last() else { panic!() };
    assert_eq!(*reason, EndReason::Idle);
    assert_eq!(stats.initiator.missed_bytes, 15);
}

#[test]
fn global_cap_bounds_many_flows() {
    // Each side may hold 1 MiB, but all flows together only 16 bytes.
    let cfg = FlowTrackerConfig::default().with_max_reassembly_memory(16);
    let mut s = Script::new(cfg);
    for port in 1..=4u16 {
        s.client.1 = 40000 + port;
        s.handshake().c(PSH_ACK, 111, 5001, b"0123456789");
        assert!(s.driver.stats().buffered_bytes <= 16);
    }
    let ev = s.finish();
    assert!(ev.iter().filter(|e| **e == Ev::Anomaly(AnomalyKind::BufferOverflow)).count() >= 2);
    assert_eq!(s.driver.stats().buffered_bytes, 0);
}

#[test]
fn eviction_is_reported_as_an_anomaly() {
    let mut s = Script::new(FlowTrackerConfig::default().with_max_flows(1));
    s.c(SYN, 1, 0, b"");
    s.client.1 += 1;
    s.c(SYN, 1, 0, b"");
    assert!(s.events.contains(&Ev::Anomaly(AnomalyKind::FlowTableEviction)));
    s.finish();
}

#[test]
fn rst_is_reported() {
    let mut s = Script::new(FlowTrackerConfig::default());
    s.handshake().s(RST | TcpFlags::ACK, 5001, 101, b"");
    let ev = s.finish();
    assert!(ev.contains(&Ev::Rst(FlowSide::Responder)));
}

#[test]
fn a_snapshot_is_what_the_end_would_report_so_far() {
    use crate::packet::PacketView;
    use crate::testkit::flags;
    let (c, s) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let mut d: FlowDriver<FiveTuple> =
        FlowDriver::new(FiveTuple::new(), FlowTrackerConfig::default());
    let frames = [
        Frame::tcp(c, 40000, s, 80, flags::SYN, 99, 0),
        Frame::tcp(s, 80, c, 40000, flags::SYN_ACK, 499, 100),
        Frame::tcp(c, 40000, s, 80, flags::ACK, 100, 500).payload(b"abc"),
        // A hole of 3 bytes, then 3 more: buffered, not yet missed.
        Frame::tcp(c, 40000, s, 80, flags::ACK, 106, 500).payload(b"ghi"),
    ];
    let mut flow = None;
    for (i, f) in frames.iter().enumerate() {
        let bytes = f.build();
        let view =
            PacketView::new(Timestamp::from_secs_micros(100, i as u32), LinkType::ETHERNET, &bytes);
        if let Disposition::Tracked { flow: id, .. } =
            d.handle_packet(&view, &mut |_: DriverEvent<'_, _>| {})
        {
            flow = Some(id);
        }
    }
    let snap = d.snapshot(flow.unwrap()).unwrap();
    assert_eq!(snap.stats.initiator.packets, 3);
    assert_eq!(snap.stats.responder.packets, 1);
    assert_eq!(snap.stats.initiator.high_watermark_bytes, 3);
    assert_eq!(snap.stats.initiator.missed_bytes, 0);
    assert_eq!(snap.history.to_string(), "ShD");
    let mut ended = None;
    d.finish(&mut |e: DriverEvent<'_, _>| {
        if let DriverEvent::Flow(FlowEvent::Ended { stats, conn_state, history, .. }) = e {
            ended = Some((stats, conn_state, history));
        }
    });
    let (stats, conn_state, history) = ended.unwrap();
    assert_eq!(conn_state, snap.conn_state);
    // Ending flushed the hole, which history records as a gap.
    assert_eq!(history.to_string(), "ShDG");
    assert_eq!(stats.initiator.packets, snap.stats.initiator.packets);
    assert_eq!(stats.initiator.missed_bytes, 3);
    assert!(d.snapshot(flow.unwrap()).is_none());
}

#[test]
fn flows_without_payload_take_no_stream_state_and_lose_nothing_by_it() {
    use crate::packet::PacketView;
    use crate::testkit::flags;
    let (c, s) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let run = |frames: &[Frame]| {
        let mut d: FlowDriver<FiveTuple> =
            FlowDriver::new(FiveTuple::new(), FlowTrackerConfig::default());
        let mut ended = None;
        let mut sink = |e: DriverEvent<'_, _>| {
            if let DriverEvent::Flow(FlowEvent::Ended { stats, .. }) = e {
                ended = Some(stats);
            }
        };
        for (i, f) in frames.iter().enumerate() {
            let bytes = f.build();
            let ts = Timestamp::from_secs_micros(100, i as u32);
            d.handle_packet(&PacketView::new(ts, LinkType::ETHERNET, &bytes), &mut sink);
        }
        let held = d.memory_bytes() - d.tracker().memory_bytes();
        d.finish(&mut sink);
        (held, ended.unwrap())
    };
    let handshake = [
        Frame::tcp(c, 40000, s, 80, flags::SYN, 99, 0),
        Frame::tcp(s, 80, c, 40000, flags::SYN_ACK, 499, 100),
        Frame::tcp(c, 40000, s, 80, flags::ACK, 100, 500),
        Frame::tcp(c, 40000, s, 80, flags::RST, 100, 0),
    ];
    let (held, _) = run(&handshake);
    assert_eq!(held, 0, "a handshake and a reset need no stream state");
    // A pure ACK of 100 server bytes the capture never held: that is missed data.
    let mut lost = handshake[..3].to_vec();
    lost.push(Frame::tcp(c, 40000, s, 80, flags::ACK, 100, 600));
    let (held, stats) = run(&lost);
    assert!(held > 0);
    assert_eq!(stats.responder.missed_bytes, 100);
    assert_eq!(stats.initiator.missed_bytes, 0);
}

/// `inner` (an Ethernet frame) inside VXLAN between two VTEPs.
fn in_vxlan(inner: Vec<u8>) -> Vec<u8> {
    let payload = [&[0x08u8, 0, 0, 0, 0, 0, 5, 0][..], &inner].concat();
    Frame::udp("172.16.0.1".parse().unwrap(), 49152, "172.16.0.2".parse().unwrap(), 4789)
        .payload(&payload)
        .build()
}

#[test]
fn tunnel_flows_lists_the_flows_inside_the_last_packet() {
    let mut s = Script::new(FlowTrackerConfig::default());
    let (c, v) = (s.client, s.server);
    let udp = Frame::udp(c.0, 5000, v.0, 53).payload(b"q").build();
    s.send(in_vxlan(udp.clone()));
    let Some(Disposition::Tracked { flow: outer, .. }) = s.last else { panic!() };
    let inner = s.driver.tunnel_flows().to_vec();
    assert_eq!(inner.len(), 1);
    assert_ne!(inner[0], outer);
    assert_eq!(s.driver.tracker().key(inner[0]).map(|k| k.lo().1.max(k.hi().1)), Some(5000));
    // A packet without a tunnel: nothing listed (the list is not left from before).
    s.send(Frame::udp(c.0, 6000, v.0, 53).payload(b"q").build());
    assert!(s.driver.tunnel_flows().is_empty());
    // Two layers, outermost first: VXLAN inside VXLAN.
    s.send(in_vxlan(
        Frame::udp("10.9.0.1".parse().unwrap(), 49152, "10.9.0.2".parse().unwrap(), 4789)
            .payload(&[&[0x08u8, 0, 0, 0, 0, 0, 6, 0][..], &udp].concat())
            .build(),
    ));
    let nested = s.driver.tunnel_flows().to_vec();
    assert_eq!(nested.len(), 2);
    assert_eq!(
        s.driver.tracker().key(nested[1]),
        s.driver.tracker().key(inner[0]),
        "the innermost is the same flow"
    );
    // A malformed frame: no layers either.
    s.send(vec![0; 10]);
    assert!(s.driver.tunnel_flows().is_empty());
}

#[test]
fn tcp_inside_a_tunnel_is_reassembled_from_the_frame() {
    let mut s = Script::new(FlowTrackerConfig::default());
    let (c, v) = (s.client, s.server);
    let seg = |from_client: bool, flags: u16, seq: u32, ack: u32, data: &[u8]| {
        let (a, b) = if from_client { (c, v) } else { (v, c) };
        in_vxlan(Frame::tcp(a.0, a.1, b.0, b.1, flags, seq, ack).payload(data).build())
    };
    s.send(seg(true, SYN, 100, 0, b""));
    s.send(seg(false, SYN_ACK, 5000, 101, b""));
    s.send(seg(true, ACK, 101, 5001, b""));
    // Out of order inside the tunnel: the second segment first.
    s.send(seg(true, PSH_ACK, 107, 5001, b"world"));
    s.send(seg(true, PSH_ACK, 101, 5001, b"hello "));
    s.send(seg(false, PSH_ACK, 5001, 112, b"ok"));
    s.send(seg(true, FIN_ACK, 112, 5003, b""));
    s.send(seg(false, FIN_ACK, 5003, 113, b""));
    let events = s.finish();
    assert_eq!(Script::stream(&events, FlowSide::Initiator), b"hello world");
    assert_eq!(Script::stream(&events, FlowSide::Responder), b"ok");
    // Two flows: the VXLAN UDP flow and the TCP connection inside it.
    let ends: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Ev::Ended { conn_state, history, .. } => Some((*conn_state, history.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert!(ends.contains(&(ConnState::Sf, "ShADdFf".to_string())), "{ends:?}");
    assert_eq!(s.driver.tracker_stats().tunnels.decapsulated(), 8);
}

/// Everything a run reports, folded into one number per packet so whole captures can be
/// compared: each event (stream bytes included) and each disposition.
#[cfg(feature = "pcap")]
#[derive(Default)]
struct Digests(Vec<u64>);

#[cfg(feature = "pcap")]
impl Digests {
    fn push(&mut self, what: &dyn core::fmt::Debug) {
        use std::hash::{DefaultHasher, Hasher};
        struct W(DefaultHasher);
        impl core::fmt::Write for W {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                self.0.write(s.as_bytes());
                Ok(())
            }
        }
        let mut w = W(DefaultHasher::new());
        core::fmt::write(&mut w, format_args!("{what:?}")).unwrap();
        self.0.push(w.0.finish());
    }
}

/// A user's reassembler: the default one without its fast path, made by a factory that
/// counts what it makes.
#[cfg(feature = "pcap")]
#[derive(Debug)]
struct Plugged(DefaultReassembler);

#[cfg(feature = "pcap")]
impl Reassembler for Plugged {
    fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        config: &ReassemblyConfig,
        out: &mut impl FnMut(StreamEvent<'_>),
    ) -> Outcome {
        self.0.segment(seq, syn, fin, payload, config, out)
    }
    fn ack(&mut self, ack: u32, out: &mut impl FnMut(StreamEvent<'_>)) {
        self.0.ack(ack, out)
    }
    fn finish(&mut self, out: &mut impl FnMut(StreamEvent<'_>)) {
        self.0.finish(out)
    }
    fn stats(&self) -> &StreamStats {
        self.0.stats()
    }
    fn buffered_bytes(&self) -> usize {
        self.0.buffered_bytes()
    }
    fn fin_offset(&self) -> Option<u64> {
        self.0.fin_offset()
    }
    fn next_offset(&self) -> u64 {
        self.0.next_offset()
    }
    fn reset(&mut self) {
        self.0.reset()
    }
}

#[cfg(feature = "pcap")]
#[derive(Default)]
struct PluggedFactory(std::rc::Rc<core::cell::Cell<usize>>);

#[cfg(feature = "pcap")]
impl ReassemblerFactory for PluggedFactory {
    type Reassembler = Plugged;
    fn new_reassembler(&mut self) -> Plugged {
        self.0.set(self.0.get() + 1);
        Plugged(DefaultReassembler::new())
    }
}

/// Every packet through `d`, one at a time or (`batched`) in uneven batches with every
/// group looked up ahead: digests of the dispositions and counters, and of the events.
#[cfg(feature = "pcap")]
fn drive<R: ReassemblerFactory>(
    d: &mut FlowDriver<FiveTuple, (), R>,
    packets: &[PacketView<'_>],
    batched: bool,
) -> (Vec<u64>, Vec<u64>) {
    let mut out = Digests::default();
    let mut events = Digests::default();
    let mut sink = |e: DriverEvent<'_, FiveTupleKey>| events.push(&e);
    if batched {
        d.tracker.warm_above = 0;
        let mut dispositions = Vec::new();
        // Uneven calls, so groups straddle call boundaries and remainders occur.
        for chunk in packets.chunks(37) {
            d.handle_batch(chunk, &mut sink, |disp| dispositions.push(disp));
        }
        d.finish(&mut sink);
        dispositions.iter().for_each(|disp| out.push(disp));
    } else {
        for p in packets {
            let disp = d.handle_packet(p, &mut sink);
            out.push(&disp);
        }
        d.finish(&mut sink);
    }
    out.push(d.tracker_stats());
    out.push(d.stats());
    (out.0, events.0)
}

/// On every shared capture, three ways of driving report exactly what `handle_packet`
/// one packet at a time with the default reassembler does:
/// - `handle_batch` with every group looked up ahead, with the default table and with a
///   64-flow table, where flows are evicted and slots reused between a group's lookups
///   and its packets (so the slot hints go stale);
/// - a reassembler plugged in through a factory of the user's, which declines the fast
///   path (`Reassembler::segment_next`), so every segment takes the full path: the fast
///   path changes nothing but speed. The factory is asked for two reassemblers per
///   stream state the driver allocates, and no more (ended flows' are reused).
#[cfg(feature = "pcap")]
#[test]
// The library does no I/O; this test reads the shared captures.
#[allow(clippy::disallowed_methods)]
fn batches_and_plugged_reassemblers_report_what_single_packets_do_on_every_shared_capture() {
    use std::path::{Path, PathBuf};

    fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                captures(&path, out);
            } else if path.extension().is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap") {
                out.push(path);
            }
        }
    }
    let shared = std::env::var("FLOWSCOPE_SHARED").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    let mut files = Vec::new();
    captures(&shared.join("pcaps"), &mut files);
    files.sort();
    assert!(files.len() >= 80, "shared captures not found under {}", shared.display());

    let small = FlowTrackerConfig::default().with_max_flows(64);
    let (mut warmed, mut made_total) = (0usize, 0usize);
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let Ok(mut reader) = crate::pcap::PcapReader::new(bytes.as_slice()) else { continue };
        let mut owned = Vec::new();
        while let Ok(Some(p)) = reader.next_packet() {
            owned.push((p.ts, p.link, p.data.to_vec(), p.orig_len));
        }
        let views: Vec<PacketView<'_>> = owned
            .iter()
            .map(|(ts, link, data, orig)| PacketView::new(*ts, *link, data).with_orig_len(*orig))
            .collect();
        for config in [&FlowTrackerConfig::default(), &small] {
            let new =
                || FlowDriver::new(FiveTuple::new(), config.clone()).with_emit_anomalies(true);
            let single = drive(&mut new(), &views, false);
            let batch = drive(&mut new(), &views, true);
            assert!(single == batch, "{}: batched run differs", file.display());

            let factory = PluggedFactory::default();
            let made = std::rc::Rc::clone(&factory.0);
            let mut plugged =
                FlowDriver::with_factory(FiveTuple::new(), config.clone(), factory, |_, _| ())
                    .with_emit_anomalies(true);
            let ours = drive(&mut plugged, &views, false);
            assert!(single == ours, "{}: plugged run differs", file.display());
            assert_eq!(made.get(), 2 * plugged.streams_allocated, "{}", file.display());
            made_total += made.get();
        }
        warmed += views.len();
    }
    assert!(warmed > 250_000, "{warmed} packets");
    assert!(made_total > 1000, "{made_total} reassemblers made");
}

#[test]
fn bad_checksums_are_not_reassembled_nor_opened_as_tunnels() {
    let mut s = Script::new(FlowTrackerConfig::default().with_verify_checksums(true));
    let (c, v) = (s.client, s.server);
    s.handshake();
    // "abc" with one byte changed in flight, then "abc" intact at the same place: the
    // stream holds the intact bytes once, and the history the spoiled segment's C.
    let seg = Frame::tcp(c.0, c.1, v.0, v.1, PSH_ACK, 101, 5001).payload(b"abc").build();
    let mut spoiled = seg.clone();
    spoiled[54] = b'X';
    s.send(spoiled);
    assert!(matches!(s.last, Some(Disposition::BadChecksum { flow: Some(_), .. })));
    s.send(seg).s(ACK, 5001, 104, b"");
    // A VXLAN packet whose inner segment is spoiled: the outer flow is tracked, the inner
    // one marked (and, not tracked, not listed among the packet's tunnel flows).
    let mut inner = Frame::tcp(c.0, 7000, v.0, 80, SYN, 1, 0).build();
    inner[14 + 20 + 4] ^= 1;
    s.send(in_vxlan(inner));
    assert!(matches!(s.last, Some(Disposition::Tracked { .. })));
    assert_eq!(s.driver.tracker_stats().bad_checksum, 2);
    assert_eq!(s.driver.tracker_stats().tunnels.decapsulated(), 1);
    // Its outer UDP checksum spoiled instead: the tunnel is not opened (as in Zeek).
    let mut outer = in_vxlan(Frame::tcp(c.0, 7001, v.0, 80, SYN, 1, 0).build());
    outer[14 + 20 + 7] ^= 1;
    s.send(outer);
    assert!(matches!(s.last, Some(Disposition::BadChecksum { flow: Some(_), .. })));
    assert_eq!(s.driver.tracker_stats().bad_checksum, 3);
    assert_eq!(s.driver.tracker_stats().tunnels.decapsulated(), 1);
    let events = s.finish();
    assert_eq!(Script::stream(&events, FlowSide::Initiator), b"abc");
    let mut histories: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Ev::Ended { history, .. } => Some(history.as_str()),
            _ => None,
        })
        .collect();
    histories.sort_unstable();
    // The connection, the inner attempt (its only packet spoiled), and the VXLAN flow
    // (both outer packets have the same ports).
    assert_eq!(histories, ["C", "DC", "ShACDa"]);
}
