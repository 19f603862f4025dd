//! The bodies of flowscope's fuzz targets, and the seed corpora the project builds for
//! them.
//!
//! Each target is a plain function of the input bytes that panics when an invariant
//! breaks, so the same code runs under libFuzzer (`cargo +nightly fuzz run <target>`) and
//! under `cargo test` on stable, where `tests/replay.rs` replays the seeds and the
//! committed corpora in `replay/<target>/`. See `fuzz/README.md`.

use std::collections::HashMap;
use std::io::Cursor;
use std::net::IpAddr;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::event::{FlowEvent, FlowSide};
use flowscope::extract::{
    community_id_v1, FiveTuple, FiveTupleKey, FlowExtractor, IpPair, MacPair,
};
use flowscope::packet::{self, LinkType, PacketView, Transport};
use flowscope::pcap::PcapReader;
use flowscope::reassembly::{
    DefaultReassembler, Outcome, Reassembler, ReassemblyConfig, StreamEvent,
};
use flowscope::testkit::{Frame, Rng};
use flowscope::tracker::{FlowTrackerConfig, OverflowPolicy, OverlapPolicy};
use flowscope::Timestamp;

/// A fuzz target's body: panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the names of the `fuzz_targets/*.rs` binaries).
pub const TARGETS: &[(&str, Target)] = &[
    ("pcap_reader", pcap_reader),
    ("extract", extract),
    ("tracker_ops", tracker_ops),
    ("reassembly_oracle", reassembly_oracle),
    ("defrag", defrag),
];

/// Every link type the decoder reads, and one it does not.
const LINK_TYPES: &[LinkType] = &[
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::PPP,
    LinkType::PPP_HDLC,
    LinkType::RAW,
    LinkType::IEEE802_11,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IEEE802_11_RADIOTAP,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::NFLOG,
    LinkType::LINUX_SLL2,
    LinkType(147), // a user DLT: unsupported
];

// ---------------------------------------------------------------------------------------
// pcap_reader: arbitrary bytes as a capture file, every packet through a small driver.

/// Read `data` as a pcap or pcapng file and feed every packet to a driver with small
/// caps, checking the reader's and the driver's invariants.
pub fn pcap_reader(data: &[u8]) {
    let Ok(mut reader) = PcapReader::with_max_record_len(Cursor::new(data), 1 << 16) else {
        return;
    };
    let mut driver = small_driver();
    let mut packets = 0usize;
    let mut last_offset = 0u64;
    let mut seen = Vec::new();
    let mut ended = None;
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => {
                seen.push((p.ts, p.offset, p.orig_len, p.data.to_vec()));
                packets += 1;
                // Every record has a header of at least 12 bytes, so a file cannot hold
                // more packets than this: the reader never loops in place.
                assert!(packets * 12 <= data.len(), "{packets} packets from {} bytes", data.len());
                assert!(p.offset >= last_offset, "offsets go backwards");
                assert!(p.offset < data.len() as u64);
                last_offset = p.offset;
                let view = p.view();
                check_decode(&view);
                driver.handle_packet(&view, &mut |_: DriverEvent<'_, FiveTupleKey>| {});
                check_driver(&driver);
            }
            Ok(None) => break,
            Err(e) => {
                if let Some(off) = e.offset() {
                    assert!(off <= data.len() as u64, "error offset {off} beyond the input: {e}");
                }
                assert!(!e.to_string().is_empty());
                ended = Some(e.to_string());
                // After an error the reader is finished.
                assert!(matches!(reader.next_packet(), Ok(None)));
                break;
            }
        }
    }
    assert!(reader.stats().packets as usize == packets);
    driver.finish(&mut |_: DriverEvent<'_, FiveTupleKey>| {});
    check_driver(&driver);
    assert_eq!(driver.tracker().flow_count(), 0);
    batches_match(data, &seen, ended.as_deref(), reader.stats());
}

/// Read `data` again in batches (of a size the input picks, from reads of a size it
/// picks): the same packets, error and counters as one record at a time.
fn batches_match(
    data: &[u8],
    seen: &[(Timestamp, u64, u32, Vec<u8>)],
    ended: Option<&str>,
    stats: flowscope::pcap::ReaderStats,
) {
    let max = usize::from(data.last().copied().unwrap_or(0) % 16) + 1;
    let chunk = 64 + usize::from(data.first().copied().unwrap_or(0)) * 8;
    let Ok(mut reader) = PcapReader::with_max_record_len(Trickle { data, chunk }, 1 << 16) else {
        panic!("the file header read once and not again");
    };
    let mut got = Vec::new();
    let error = loop {
        match reader.next_batch(max) {
            Ok(b) if b.is_empty() => break None,
            Ok(b) => {
                assert!(b.len() <= max);
                got.extend(b.iter().map(|p| (p.ts, p.offset, p.orig_len, p.data.to_vec())));
            }
            Err(e) => break Some(e.to_string()),
        }
    };
    assert!(got == seen, "batches of {max}: {} packets, one at a time {}", got.len(), seen.len());
    assert_eq!(error.as_deref(), ended);
    assert_eq!(reader.stats(), stats);
}

/// Hands out at most `chunk` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn small_driver() -> FlowDriver<FiveTuple> {
    let config = FlowTrackerConfig::default()
        .with_max_flows(16)
        .with_max_buffer(4096)
        .with_max_reassembly_memory(16 * 1024)
        // Small enough that streams wrap the retransmission ring.
        .with_retransmit_check_bytes(1000);
    FlowDriver::new(FiveTuple::default(), config).with_emit_anomalies(true)
}

fn check_driver<S>(driver: &FlowDriver<FiveTuple, S>) {
    let t = driver.tracker_stats();
    let cfg = driver.tracker().config();
    assert_eq!(t.inputs(), t.outcomes(), "packet ledger: {t:?}");
    assert_eq!(
        t.flows_created,
        t.flows_ended.total() + driver.tracker().flow_count() as u64,
        "flow ledger: {t:?}"
    );
    assert!(driver.tracker().flow_count() <= cfg.max_flows);
    let d = driver.stats();
    assert!(d.buffered_bytes as usize <= cfg.max_reassembly_memory, "{d:?}");
    assert!(d.buffered_high_watermark as usize <= cfg.max_reassembly_memory, "{d:?}");
}

// ---------------------------------------------------------------------------------------
// extract: an arbitrary frame under every link type.

/// Decode `data[2..]` as a frame of the link type `data[0]` picks (with `data[1]` bytes
/// cut from its wire length), through the decoder and every extractor.
pub fn extract(data: &[u8]) {
    let [sel, cut, frame @ ..] = data else { return };
    let link = LINK_TYPES[usize::from(*sel) % LINK_TYPES.len()];
    let ts = Timestamp::from_secs_micros(1_700_000_000, 0);
    let view = PacketView::new(ts, link, frame)
        .with_orig_len((frame.len() as u32).saturating_add(u32::from(*cut)));
    check_decode(&view);
}

/// Decode one packet with everything that reads packets, checking the documented
/// invariants of what comes back.
fn check_decode(view: &PacketView<'_>) {
    let frame = view.frame;
    let decoded = packet::decode(view);
    // Deterministic.
    assert_eq!(decoded, packet::decode(view));
    // The fast path for the commonest frame decides exactly as the layered walk.
    assert_eq!(decoded, flowscope::testkit::decode_layered(view));
    if let Ok(h) = &decoded {
        let end = h.payload_offset as usize + h.payload_len as usize;
        assert!(end <= frame.len(), "payload {end} beyond frame {}", frame.len());
        assert!(h.payload_len <= h.payload_wire_len, "{h:?}");
        assert_eq!(h.payload(frame).len(), h.payload_len as usize);
        assert!(h.vlan.depth() <= packet::MAX_VLAN_TAGS);
        assert!(h.mpls_depth <= packet::MAX_MPLS_LABELS);
        if let Some(t) = h.tcp() {
            if let Some(opts) = t.options(frame) {
                assert!(opts.len() <= 40);
            }
        }
        if let Transport::Icmp(i) = h.transport {
            let _ = i.inner(frame);
        }
        let _ = h.mac(frame);
    }
    let five = FiveTuple::default().extract(view);
    match (&five, &decoded) {
        (Ok(x), Ok(h)) => {
            assert_eq!(&x.headers, h);
            let ip = x.headers.ip.expect("a keyed packet is IP");
            let _ = community_id_v1(0, ip.src(), ip.dst(), ip.proto, x.headers.ports(), false);
        }
        (Ok(_), Err(e)) => panic!("keyed a frame the decoder rejects: {e}"),
        _ => {}
    }
    let _ = FiveTuple::default().with_vlan_in_key(true).extract(view);
    let _ = IpPair::default().extract(view);
    let _ = MacPair::default().extract(view);
    // Tunnels: every layer found obeys the same invariants, with offsets into the frame.
    let mut outer = decoded;
    let config = packet::TunnelConfig::default();
    for _ in 0..config.max_depth {
        let Ok(h) = outer else { break };
        let Some(found) = packet::encapsulated(frame, &h, &config) else { break };
        assert_eq!(Some(found), packet::encapsulated(frame, &h, &config));
        let Ok(encap) = found else { break };
        assert!(encap.offset() as usize <= frame.len());
        let inner = packet::decode_encapsulated(view, &h, &encap);
        if let Ok(i) = &inner {
            let end = i.payload_offset as usize + i.payload_len as usize;
            assert!(end <= frame.len(), "inner payload {end} beyond frame {}", frame.len());
            assert!(i.payload_offset >= encap.offset(), "inner payload before the tunnel");
            assert!(i.payload_len <= i.payload_wire_len, "{i:?}");
            assert_eq!(i.frame_len, h.frame_len);
            if let Ok(x) = FiveTuple::default().extract_headers(frame, *i) {
                assert_eq!(&x.headers, i);
            }
        }
        outer = inner;
    }
}

// ---------------------------------------------------------------------------------------
// defrag: arbitrary fragments of a few datagrams against their known bytes.

#[derive(Arbitrary, Debug)]
struct DefragLimits {
    max_datagrams: u8,
    max_bytes: u16,
    timeout_s: u8,
}

#[derive(Arbitrary, Debug)]
struct FragOp {
    /// Which of a few datagrams (and so which id and which addresses).
    datagram: u8,
    v6: bool,
    /// Offset in 8-byte units, and length in bytes.
    offset: u8,
    len: u8,
    more: bool,
    /// Write different bytes than the datagram's (an evasion attempt).
    tamper: bool,
    /// Milliseconds since the previous fragment.
    dt_ms: u16,
    /// Cut the frame to this many bytes.
    cut: Option<u8>,
}

/// The byte at `pos` of datagram `d`'s payload.
fn pattern(d: u8, pos: usize) -> u8 {
    (usize::from(d).wrapping_mul(31).wrapping_add(pos.wrapping_mul(7)) % 251) as u8
}

/// Feed arbitrary fragments of a few datagrams (bytes from a known pattern, sometimes
/// tampered, sometimes cut) to a defragmenter with small limits, checking after every
/// step: the counters add up, the datagrams in flight and the bytes held stay under their
/// caps, and a completed datagram decodes unfragmented with exactly the pattern's bytes
/// whenever no tampered fragment went into it.
pub fn defrag(data: &[u8]) {
    use flowscope::defrag::{DefragConfig, Defragmenter, Push};
    let mut u = Unstructured::new(data);
    let Ok(limits) = DefragLimits::arbitrary(&mut u) else { return };
    let config = DefragConfig::default()
        .with_max_datagrams(usize::from(limits.max_datagrams % 8) + 1)
        .with_max_bytes(usize::from(limits.max_bytes))
        .with_timeout(Duration::from_secs(u64::from(limits.timeout_s % 60) + 1));
    let mut d = Defragmenter::new(config);
    let mut clock = 1_700_000_000_000u64;
    // Datagrams that had a tampered piece since they last completed (by datagram, family).
    let mut tampered: HashMap<(u8, bool), bool> = HashMap::new();
    for op in read_ops::<FragOp>(&mut u, DEFRAG_OPS) {
        clock += u64::from(op.dt_ms);
        let which = op.datagram % 4;
        let (src, dst): (IpAddr, IpAddr) = if op.v6 {
            (
                "2001:db8::1".parse().expect("literal"),
                format!("2001:db8::{}", which + 2).parse().expect("literal"),
            )
        } else {
            (
                "10.0.0.1".parse().expect("literal"),
                format!("10.0.1.{}", which + 2).parse().expect("literal"),
            )
        };
        let start = usize::from(op.offset) * 8;
        let mut bytes: Vec<u8> =
            (start..start + usize::from(op.len)).map(|p| pattern(which, p)).collect();
        if op.tamper && !bytes.is_empty() {
            bytes.iter_mut().for_each(|b| *b ^= 0x5a);
            tampered.insert((which, op.v6), true);
        }
        let frame = Frame::raw(src, dst, 17)
            .payload(&bytes)
            .fragment(start as u16, op.more, u32::from(which) + 1)
            .build();
        let frame = match op.cut {
            Some(c) => frame[..frame.len().min(usize::from(c))].to_vec(),
            None => frame,
        };
        let view =
            PacketView::new(Timestamp::from_nanos(clock * 1_000_000), LinkType::ETHERNET, &frame)
                .with_orig_len(frame.len().max(usize::from(op.len) + 60) as u32);
        let Ok(h) = packet::decode(&view) else { continue };
        if h.ip.and_then(|ip| ip.fragment).is_none() {
            continue;
        }
        if let Push::Complete(dg) = d.push(&view, &h) {
            // The IP layer reads back whole (a transport header the fragments did not
            // supply is the datagram's own fault, so decoding may stop above IP).
            if let Err(e) = packet::decode(&dg.view(view.ts)) {
                assert!(matches!(e.layer, packet::Layer::Udp), "{e}");
            }
            let f = &dg.frame;
            let be = |at: usize| usize::from(u16::from_be_bytes([f[at], f[at + 1]]));
            let (hdr, payload) = if op.v6 { (40, &f[14 + 40..]) } else { (20, &f[14 + 20..]) };
            if op.v6 {
                assert_eq!(
                    (be(14 + 4), f[14 + 6]),
                    (payload.len(), 17),
                    "IPv6 length, next header"
                );
            } else {
                assert_eq!(be(14 + 2), hdr + payload.len(), "IPv4 total length");
                assert_eq!(be(14 + 6) & 0x3fff, 0, "IPv4 fragment fields cleared");
            }
            if !tampered.remove(&(which, op.v6)).unwrap_or(false) {
                for (pos, b) in payload.iter().enumerate() {
                    assert_eq!(*b, pattern(which, pos), "byte {pos} of datagram {which}");
                }
            }
            d.recycle(dg);
        }
        let st = *d.stats();
        assert_eq!(st.fragments, st.absorbed + st.reassembled, "{st:?}");
        assert!(d.in_flight() <= usize::from(limits.max_datagrams % 8) + 1);
        assert!(
            d.buffered_bytes() <= usize::from(limits.max_bytes),
            "{} > {}",
            d.buffered_bytes(),
            limits.max_bytes
        );
    }
}

// ---------------------------------------------------------------------------------------
// tracker_ops: sequences of packets, clock moves and finishes through the driver.

#[derive(Arbitrary, Debug)]
struct Limits {
    max_flows: u8,
    max_buffer: u16,
    global: u16,
    tcp_idle: u16,
    udp_idle: u16,
    other_idle: u8,
    attempt_idle: u8,
    linger: u8,
    drop_flow: bool,
    last_wins: bool,
    vlan_in_key: bool,
    verify_checksums: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Packet(Pkt),
    /// Move the clock forward this many seconds.
    Advance(u16),
    Finish,
}

#[derive(Arbitrary, Debug)]
struct Pkt {
    /// Milliseconds since the previous packet; negative values make late packets.
    dt_ms: i16,
    src: u8,
    dst: u8,
    sport: u8,
    dport: u8,
    l4: L4Sel,
    vlan: Option<u8>,
    /// Cut the built frame to this many bytes (hostile truncation).
    cut: Option<u8>,
    /// Send it inside a tunnel, or as two IP fragments.
    wrap: Option<WrapSel>,
    /// Flip the low bit of the byte at this index (modulo the frame's length): a bad
    /// checksum, or a damaged header.
    flip: Option<u16>,
}

#[derive(Arbitrary, Debug)]
enum WrapSel {
    Vxlan,
    Gre,
    IpInIp,
    /// Split the IP payload after `8 * (at + 1)` bytes; send the second piece first when
    /// `reverse`.
    Fragments {
        at: u8,
        reverse: bool,
    },
}

#[derive(Arbitrary, Debug)]
enum L4Sel {
    Tcp { flags: u8, seq: SeqSel, ack: SeqSel, len: u16 },
    Udp { len: u8 },
    Icmp { ty: u8, code: u8 },
    Other(u8),
}

/// Sequence numbers near each direction's ISN (so segments meet), or anywhere.
#[derive(Arbitrary, Debug)]
enum SeqSel {
    Near(u16),
    Raw(u32),
}

const HOSTS: [&str; 6] =
    ["10.0.0.1", "10.0.0.2", "192.0.2.7", "2001:db8::1", "2001:db8::2", "fe80::7"];
const PORTS: [u16; 6] = [80, 443, 53, 40000, 40001, 0];

/// Run an `arbitrary`-decoded sequence of packets, clock moves and finishes through a
/// driver with arbitrary (small) limits, checking after every step: the packet and flow
/// ledgers, `flow_count <= max_flows`, buffered bytes within the global cap, each side's
/// peak within `max_buffer`, and every stream's bytes delivered or skipped exactly once
/// in order.
pub fn tracker_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(limits) = Limits::arbitrary(&mut u) else { return };
    let max_buffer = usize::from(limits.max_buffer);
    let config = FlowTrackerConfig::default()
        .with_max_flows(usize::from(limits.max_flows % 32) + 1)
        .with_max_buffer(max_buffer)
        .with_max_reassembly_memory(usize::from(limits.global))
        .with_idle(
            Duration::from_secs(u64::from(limits.tcp_idle) + 1),
            Duration::from_secs(u64::from(limits.udp_idle) + 1),
            Duration::from_secs(u64::from(limits.other_idle) + 1),
        )
        .with_attempt_idle(Duration::from_secs(u64::from(limits.attempt_idle) + 1))
        .with_linger(Duration::from_secs(u64::from(limits.linger)))
        .with_overflow_policy(overflow(limits.drop_flow))
        .with_overlap_policy(overlap(limits.last_wins))
        .with_verify_checksums(limits.verify_checksums);
    let extractor = FiveTuple::default().with_vlan_in_key(limits.vlan_in_key);
    let mut driver: FlowDriver<FiveTuple> =
        FlowDriver::new(extractor, config).with_emit_anomalies(true);
    let mut streams = StreamCheck::new(max_buffer);
    let hosts: Vec<IpAddr> = HOSTS.iter().map(|h| h.parse().expect("literal")).collect();
    let mut now: u64 = 1_700_000_000_000_000_000;
    for op in read_ops::<Op>(&mut u, TRACKER_OPS) {
        match op {
            Op::Packet(p) => {
                now = now.saturating_add_signed(i64::from(p.dt_ms) * 1_000_000);
                for frame in build(&hosts, &p) {
                    let view =
                        PacketView::new(Timestamp::from_nanos(now), LinkType::ETHERNET, &frame);
                    driver.handle_packet(&view, &mut |e: DriverEvent<'_, FiveTupleKey>| {
                        streams.on(e)
                    });
                }
            }
            Op::Advance(secs) => {
                now += u64::from(secs) * 1_000_000_000;
                driver.advance(Timestamp::from_nanos(now), &mut |e: DriverEvent<
                    '_,
                    FiveTupleKey,
                >| {
                    streams.on(e)
                });
            }
            Op::Finish => {
                driver.finish(&mut |e: DriverEvent<'_, FiveTupleKey>| streams.on(e));
                assert_eq!(driver.tracker().flow_count(), 0);
                assert_eq!(driver.stats().buffered_bytes, 0);
            }
        }
        check_driver(&driver);
        let t = driver.tracker_stats();
        assert_eq!(streams.started, t.flows_created);
        assert_eq!(streams.ended, t.flows_ended.total());
    }
    driver.finish(&mut |e: DriverEvent<'_, FiveTupleKey>| streams.on(e));
    check_driver(&driver);
    assert_eq!(driver.tracker().flow_count(), 0);
    assert_eq!(driver.stats().buffered_bytes, 0);
    assert!(streams.next.is_empty(), "streams left open: {:?}", streams.next.len());
    let d = driver.stats();
    assert_eq!(d.delivered_bytes + d.missed_bytes, streams.covered);
}

fn overflow(drop_flow: bool) -> OverflowPolicy {
    if drop_flow {
        OverflowPolicy::DropFlow
    } else {
        OverflowPolicy::SlidingWindow
    }
}

fn overlap(last_wins: bool) -> OverlapPolicy {
    if last_wins {
        OverlapPolicy::LastWins
    } else {
        OverlapPolicy::FirstWins
    }
}

fn build(hosts: &[IpAddr], p: &Pkt) -> Vec<Vec<u8>> {
    // Keep each packet within one address family.
    let v6 = p.src % 2 == 1;
    let pick = |i: u8| {
        let family = if v6 { &hosts[3..] } else { &hosts[..3] };
        family[usize::from(i) % family.len()]
    };
    let (src, dst) = (pick(p.src / 2), pick(p.dst));
    let sport = PORTS[usize::from(p.sport) % PORTS.len()];
    let dport = PORTS[usize::from(p.dport) % PORTS.len()];
    // Each direction of a 4-tuple has its own ISN, so `Near` numbers fall in one window.
    let isn = |a: IpAddr, ap: u16, b: IpAddr, bp: u16| -> u32 {
        let octets = |ip: IpAddr| match ip {
            IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
            IpAddr::V6(v) => v.octets(),
        };
        let mut h = 0x811c_9dc5u32;
        let ports = [ap.to_be_bytes(), bp.to_be_bytes()].concat();
        for byte in octets(a).iter().chain(&octets(b)).chain(&ports) {
            h = (h ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
        }
        h
    };
    let resolve = |s: &SeqSel, base: u32| match *s {
        SeqSel::Near(d) => base.wrapping_add(u32::from(d)),
        SeqSel::Raw(v) => v,
    };
    let mut f = match &p.l4 {
        L4Sel::Tcp { flags, seq, ack, len } => {
            let flags = u16::from(*flags); // FIN SYN RST PSH ACK URG ECE CWR
            let seq = resolve(seq, isn(src, sport, dst, dport));
            let ack = resolve(ack, isn(dst, dport, src, sport));
            let len = usize::from(*len % 1461);
            let payload: Vec<u8> = (0..len)
                .map(|i| seq.wrapping_add(i as u32).wrapping_mul(0x9e37_79b1) as u8)
                .collect();
            Frame::tcp(src, sport, dst, dport, flags, seq, ack).payload(&payload)
        }
        L4Sel::Udp { len } => {
            Frame::udp(src, sport, dst, dport).payload(&vec![0xa5; usize::from(*len)])
        }
        L4Sel::Icmp { ty, code } => Frame::icmp(src, dst, *ty, *code, [0, 1, 0, 2]),
        L4Sel::Other(proto) => Frame::raw(src, dst, *proto),
    };
    let vlan = p.vlan.map(|v| u16::from(v % 4));
    if let Some(v) = vlan {
        f = f.vlan(v);
    }
    let (ta, tb): (IpAddr, IpAddr) =
        ("172.16.0.1".parse().expect("literal"), "172.16.0.2".parse().expect("literal"));
    let outer = |o: Frame| match vlan {
        Some(v) => o.vlan(v),
        None => o,
    };
    let mut frames = match &p.wrap {
        None => vec![f.build()],
        Some(WrapSel::Vxlan) => {
            let inner = [&[0x08u8, 0, 0, 0, 0, 0, 7, 0][..], &f.build()].concat();
            vec![outer(Frame::udp(ta, 40000, tb, 4789).payload(&inner)).build()]
        }
        Some(WrapSel::Gre) => {
            let ethertype: &[u8] = if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] };
            let raw = f.clone().link(LinkType::RAW).build();
            let gre = [&[0x20u8, 0][..], ethertype, &[0, 0, 0, 9], &raw].concat();
            vec![outer(Frame::raw(ta, tb, 47).payload(&gre)).build()]
        }
        Some(WrapSel::IpInIp) => {
            let raw = f.clone().link(LinkType::RAW).build();
            vec![outer(Frame::raw(ta, tb, if v6 { 41 } else { 4 }).payload(&raw)).build()]
        }
        Some(WrapSel::Fragments { at, reverse }) => {
            // `f` carries the VLAN tag already, so each fragment does too.
            let l4_len = f.clone().link(LinkType::RAW).build().len() - if v6 { 40 } else { 20 };
            let cut = 8 * (usize::from(*at) + 1);
            if cut >= l4_len {
                vec![f.build()]
            } else {
                let mut two = f.fragments(&[cut], u32::from(p.sport) << 8 | u32::from(p.dport));
                if *reverse {
                    two.reverse();
                }
                two
            }
        }
    };
    if let Some(at) = p.flip {
        for bytes in &mut frames {
            let n = bytes.len().max(1);
            if let Some(b) = bytes.get_mut(usize::from(at) % n) {
                *b ^= 1;
            }
        }
    }
    if let Some(cut) = p.cut {
        for bytes in &mut frames {
            bytes.truncate(usize::from(cut));
        }
    }
    frames
}

/// Follows every stream the driver reports: offsets must be contiguous from 0, each
/// byte delivered or skipped once; a side's buffer peak never exceeds `max_buffer`.
struct StreamCheck {
    max_buffer: usize,
    next: HashMap<(FiveTupleKey, FlowSide), u64>,
    started: u64,
    ended: u64,
    covered: u64,
}

impl StreamCheck {
    fn new(max_buffer: usize) -> Self {
        StreamCheck { max_buffer, next: HashMap::new(), started: 0, ended: 0, covered: 0 }
    }

    fn advance(&mut self, key: FiveTupleKey, side: FlowSide, offset: u64, len: u64) {
        let next = self.next.get_mut(&(key, side)).expect("stream event for a flow not started");
        assert_eq!(offset, *next, "stream {side:?} of {key:?} skipped or repeated bytes");
        *next += len;
        self.covered += len;
    }

    fn on(&mut self, e: DriverEvent<'_, FiveTupleKey>) {
        match e {
            DriverEvent::Flow(FlowEvent::Started { key, .. }) => {
                self.started += 1;
                for side in [FlowSide::Initiator, FlowSide::Responder] {
                    assert!(self.next.insert((key, side), 0).is_none(), "{key:?} started twice");
                }
            }
            DriverEvent::Flow(FlowEvent::Ended { key, stats, .. }) => {
                self.ended += 1;
                for side in [FlowSide::Initiator, FlowSide::Responder] {
                    assert!(self.next.remove(&(key, side)).is_some(), "{key:?} ended twice");
                }
                for s in [stats.initiator, stats.responder] {
                    assert!(s.high_watermark_bytes as usize <= self.max_buffer, "{s:?}");
                }
            }
            DriverEvent::Data { key, side, offset, bytes } => {
                assert!(!bytes.is_empty());
                self.advance(key, side, offset, bytes.len() as u64)
            }
            DriverEvent::Gap { key, side, offset, len } => {
                assert!(len > 0);
                self.advance(key, side, offset, len)
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// reassembly_oracle: segments of a known stream, checked byte for byte.

#[derive(Arbitrary, Debug)]
struct Script {
    isn: u32,
    /// Send the SYN first (the stream is anchored at its ISN + 1).
    syn_first: bool,
    len: u16,
    max_buffer: u16,
    last_wins: bool,
    drop_flow: bool,
    /// Recently delivered bytes kept to check retransmissions against.
    window: u8,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Bytes `[start, start + len)` of the stream (clamped to it); FIN when it reaches
    /// the end and `fin` is set.
    Segment { start: u16, len: u16, fin: bool },
    /// The peer acknowledges up to `upto` (clamped to the stream, plus 1 after a FIN).
    Ack { upto: u16 },
    /// A segment with a sequence number anywhere.
    Wild { seq: u32, len: u8 },
}

/// Byte `i` of the oracle stream: position-dependent, so a misplaced byte shows.
fn oracle(i: usize) -> u8 {
    ((i as u32).wrapping_mul(0x9e37_79b1) >> 24) as u8 ^ (i as u8)
}

/// Follows one reassembled stream: offsets contiguous from 0, bytes equal to the
/// oracle's.
struct OracleCheck<'s> {
    stream: &'s [u8],
    /// Next offset expected.
    next: u64,
    /// Stream index of offset 0, once anchored.
    base: Option<usize>,
    /// A wild segment may have anchored or filled anywhere: bytes are not compared.
    wild: bool,
}

impl OracleCheck<'_> {
    fn on(&mut self, e: StreamEvent<'_>) {
        match e {
            StreamEvent::Data { offset, bytes } => {
                assert_eq!(offset, self.next, "data out of order");
                assert!(!bytes.is_empty());
                if !self.wild {
                    let at = self.base.expect("data before the anchor") + offset as usize;
                    assert!(at + bytes.len() <= self.stream.len(), "data beyond the stream");
                    assert_eq!(
                        bytes,
                        &self.stream[at..at + bytes.len()],
                        "wrong bytes at offset {offset}"
                    );
                }
                self.next += bytes.len() as u64;
            }
            StreamEvent::Gap { offset, len } => {
                assert_eq!(offset, self.next, "gap out of order");
                assert!(len > 0);
                self.next += len;
            }
            _ => {}
        }
    }
}

/// Feed a [`DefaultReassembler`] segments of a known stream in an arbitrary order (overlapping,
/// repeated, before the anchor, wildly out of window) and check every delivered byte
/// against the stream, that offsets run contiguously, that the buffer never passes its
/// cap, that a stream whose bytes were all seen is delivered whole, and that segments of
/// the stream's own bytes are never counted inconsistent.
pub fn reassembly_oracle(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(script) = Script::arbitrary(&mut u) else { return };
    let len = usize::from(script.len);
    let stream: Vec<u8> = (0..len).map(oracle).collect();
    let config = ReassemblyConfig::default()
        .with_max_buffer(usize::from(script.max_buffer))
        .with_overlap(overlap(script.last_wins))
        .with_overflow(overflow(script.drop_flow))
        .with_retransmit_check(usize::from(script.window));
    // Stream byte i travels with sequence number isn + 1 + i.
    let seq_of = |i: usize| script.isn.wrapping_add(1).wrapping_add(i as u32);
    let mut r = DefaultReassembler::new();
    let mut c = OracleCheck { stream: &stream, next: 0, base: None, wild: false };
    let mut seen = vec![false; len]; // bytes handed over at or after the anchor
    let mut overflowed = false;
    let mut fin_sent = false;
    let mut max_ack = 0usize; // stream index the peer acknowledged up to
    let mut acked_early = false; // acknowledged bytes not seen yet
    if script.syn_first {
        c.base = Some(0);
        let _ = r.segment(script.isn, true, false, &[], &config, &mut |e| c.on(e));
    }
    for step in script.steps.iter().take(2048) {
        if overflowed {
            break;
        }
        match *step {
            Step::Segment { start, len: n, fin } => {
                let start = usize::from(start).min(len);
                let end = (start + usize::from(n)).min(len);
                let fin = fin && end == len;
                fin_sent |= fin;
                let b = *c.base.get_or_insert(start);
                for s in seen.iter_mut().take(end).skip(start.max(b)) {
                    *s = true;
                }
                let payload = &stream[start..end];
                let out = r.segment(seq_of(start), false, fin, payload, &config, &mut |e| c.on(e));
                if out == Outcome::Overflow {
                    assert!(script.drop_flow, "Overflow under SlidingWindow");
                    overflowed = true;
                }
            }
            Step::Ack { upto } => {
                let upto = usize::from(upto).min(len + 1);
                if let Some(b) = c.base.filter(|&b| upto > b) {
                    max_ack = max_ack.max(upto);
                    // Once the peer acknowledged the FIN, holes before it are skipped
                    // right away, even if their bytes arrive later.
                    acked_early |= seen[b..upto.min(len)].iter().any(|&s| !s);
                }
                r.ack(seq_of(upto), &mut |e| c.on(e));
            }
            Step::Wild { seq, len: n } => {
                c.wild = true;
                let junk = vec![0x5a; usize::from(n)];
                if r.segment(seq, false, false, &junk, &config, &mut |e| c.on(e))
                    == Outcome::Overflow
                {
                    overflowed = true;
                }
            }
        }
        assert!(r.buffered_bytes() <= config.max_buffer, "buffer past its cap");
        assert_eq!(r.next_offset(), c.next);
    }
    r.finish(&mut |e| c.on(e));
    let st = *r.stats();
    assert_eq!(r.buffered_bytes(), 0);
    assert!(st.high_watermark_bytes as usize <= config.max_buffer);
    assert_eq!(st.delivered_bytes + st.missed_bytes, c.next);
    // Every segment but a wild one carries the stream's own bytes.
    if !c.wild {
        assert_eq!(st.inconsistent_segments, 0, "{st:?}");
    }
    // Every byte from the anchor to the furthest one seen was seen, nothing was dropped
    // at a cap, and no acknowledgment or FIN pointed past what was seen: the stream came
    // through whole.
    let (Some(b), false) = (c.base, c.wild || overflowed) else { return };
    let reached = seen.iter().rposition(|&s| s).map_or(b, |i| i + 1).max(b);
    let complete = seen[b..reached].iter().all(|&s| s)
        && (!fin_sent || reached == len)
        && !acked_early
        && (max_ack <= reached || (fin_sent && max_ack == len + 1));
    if complete && st.cap_hits == 0 && st.dropped_ooo == 0 {
        assert_eq!(st.missed_bytes, 0, "{st:?}");
        assert_eq!(st.delivered_bytes as usize, reached - b, "{st:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Seeds.

/// Frames of every kind the builder makes, for the link types it frames (Ethernet and
/// those `Frame::link` supports).
fn sample_frames() -> Vec<(LinkType, Vec<u8>)> {
    use flowscope::packet::TcpFlags as F;
    let a: IpAddr = "192.0.2.1".parse().expect("literal");
    let b: IpAddr = "198.51.100.2".parse().expect("literal");
    let a6: IpAddr = "2001:db8::1".parse().expect("literal");
    let b6: IpAddr = "2001:db8::2".parse().expect("literal");
    let frames = vec![
        Frame::tcp(a, 40000, b, 80, F::SYN, 1000, 0).tcp_options(&[2, 4, 5, 180]),
        Frame::tcp(b, 80, a, 40000, F::SYN | F::ACK, 5000, 1001),
        Frame::tcp(a, 40000, b, 80, F::ACK | F::PSH, 1001, 5001).payload(b"GET / HTTP/1.0\r\n\r\n"),
        Frame::tcp(a6, 40000, b6, 443, F::ACK, 7, 9).payload(b"hello").vlan(42),
        Frame::tcp(a6, 40000, b6, 443, F::ACK, 7, 9)
            .ipv6_ext(0, &[1, 4, 0, 0, 0, 0])
            .ipv6_ext(60, &[1, 4, 0, 0, 0, 0]),
        Frame::udp(a, 5353, b, 53).payload(b"\x12\x34\x01\x00\x00\x01"),
        Frame::udp(a6, 5353, b6, 53).payload(b"q").vlan(1).vlan(2),
        Frame::icmp(a, b, 8, 0, [0, 1, 0, 1]).payload(b"ping"),
        Frame::icmp(a6, b6, 128, 0, [0, 1, 0, 1]),
        Frame::raw(a, b, 132).payload(&[0, 80, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0]),
        Frame::tcp(a, 1, b, 2, F::ACK, 1, 1).mpls(100).mpls(200),
        Frame::udp(a, 1, b, 2).payload(&[0; 64]).fragment(0, true, 77),
        Frame::udp(a, 1, b, 2).payload(&[0; 64]).fragment(8, false, 77),
        Frame::tcp(a, 1, b, 2, F::ACK, 1, 1).ipv4_options(&[1, 1, 1, 1]),
    ];
    // Tunnels around the first frames (see `packet::encapsulated`).
    let inner_ip = frames[2].clone().link(LinkType::RAW).build();
    let inner_eth = frames[2].build();
    let cat = |parts: &[&[u8]]| parts.concat();
    let tunnels = vec![
        Frame::udp(a, 50000, b, 4789).payload(&cat(&[&[8, 0, 0, 0, 0, 0, 1, 0], &inner_eth])),
        Frame::udp(a, 50000, b, 6081).payload(&cat(&[
            &[1, 0, 0x65, 0x58, 0, 0, 1, 0],
            &[0; 4],
            &inner_eth,
        ])),
        Frame::udp(a, 2152, b, 2152).payload(&cat(&[
            &[0x34, 0xff, 0, 80, 0, 0, 0, 1],
            &[0, 0, 0, 0x85],
            &[1, 0, 0, 0],
            &inner_ip,
        ])),
        Frame::udp(a, 5072, b, 5072).payload(&cat(&[
            &[0x41, 0x10, 1, 4],
            &[0; 4],
            &[7; 16],
            &[9; 4],
            &inner_ip,
        ])),
        Frame::udp(a, 3544, b, 40000).payload(&frames[3].clone().link(LinkType::RAW).build()),
        Frame::raw(a, b, 47).payload(&cat(&[&[0xb0, 0, 8, 0], &[0; 12], &inner_ip])),
        Frame::raw(a, b, 47).payload(&cat(&[
            &[0x10, 0, 0x88, 0xbe],
            &[0; 4],
            &[0x10, 1, 0, 2, 0, 0, 0, 0],
            &inner_eth,
        ])),
        Frame::raw(a, b, 47).payload(&cat(&[
            &[0, 0, 0x22, 0xeb],
            &[0x20, 1, 0, 2],
            &[0; 7],
            &[1],
            &[0; 8],
            &inner_eth,
        ])),
        Frame::raw(a, b, 47).payload(&cat(&[
            &[0x30, 0x81, 0x88, 0x0b],
            &[0, 40, 0, 1],
            &[0; 8],
            &[0x21],
            &inner_ip,
        ])),
        Frame::raw(a, b, 4).payload(&inner_ip),
        Frame::raw(a, b, 41).payload(&frames[3].clone().link(LinkType::RAW).build()),
    ];
    let frames: Vec<Frame> = frames.into_iter().chain(tunnels).collect();
    let mut out: Vec<(LinkType, Vec<u8>)> = Vec::new();
    for f in &frames {
        out.push((LinkType::ETHERNET, f.build()));
    }
    for link in [LinkType::RAW, LinkType::LINUX_SLL, LinkType::LINUX_SLL2, LinkType::NULL] {
        for f in frames.iter().take(4) {
            out.push((link, f.clone().link(link).build()));
        }
    }
    // Framings the builder does not make: the IP packet behind a hand-made header.
    for f in frames.iter().take(4) {
        let ip = f.clone().link(LinkType::RAW).build();
        let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
        let af: u32 = if v6 { 24 } else { 2 };
        let ppp: u16 = if v6 { 0x0057 } else { 0x0021 };
        let mut lo = af.to_be_bytes().to_vec();
        lo.extend_from_slice(&ip);
        out.push((LinkType::LOOP, lo));
        let mut hdlc = vec![0xff, 0x03];
        hdlc.extend_from_slice(&ppp.to_be_bytes());
        hdlc.extend_from_slice(&ip);
        out.push((LinkType::PPP_HDLC, hdlc.clone()));
        out.push((LinkType::PPP, hdlc));
        out.push((if v6 { LinkType::IPV6 } else { LinkType::IPV4 }, ip));
    }
    out
}

/// Most operations a structured target runs per input.
const TRACKER_OPS: usize = 1024;
const DEFRAG_OPS: usize = 512;

/// Up to `max` operations decoded from what is left of `u`, in order: how the structured
/// targets (and `explain`) read their scripts.
fn read_ops<'a, T: Arbitrary<'a>>(u: &mut Unstructured<'a>, max: usize) -> Vec<T> {
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < max {
        let Ok(op) = T::arbitrary(u) else { break };
        ops.push(op);
    }
    ops
}

/// The seed corpus of `target`: inputs the project builds, each a file of the corpus.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    use flowscope::testkit::{demo_capture, write_pcap, NgInterface, PcapNgWriter};
    let mut rng = Rng::new(0x5eed_0000 + target.len() as u64);
    match target {
        "pcap_reader" => {
            let frames = sample_frames();
            let ts = |i: usize| Timestamp::from_secs_micros(1_700_000_000 + i as u32, 0);
            let mut out = vec![demo_capture()];
            for link in [LinkType::ETHERNET, LinkType::RAW, LinkType::LINUX_SLL2] {
                let pkts: Vec<(Timestamp, Vec<u8>)> = frames
                    .iter()
                    .filter(|(l, _)| *l == link)
                    .enumerate()
                    .map(|(i, (_, f))| (ts(i), f.clone()))
                    .collect();
                out.push(write_pcap(link, 65535, &pkts));
                out.push(write_pcap(link, 60, &pkts)); // snapped records
            }
            for big_endian in [false, true] {
                let mut w = PcapNgWriter::default();
                w.section(big_endian);
                w.interface(NgInterface {
                    link: LinkType::ETHERNET,
                    snaplen: 0,
                    tsresol: Some(9),
                    tsoffset: Some(10),
                });
                w.interface(NgInterface {
                    link: LinkType::RAW,
                    snaplen: 96,
                    tsresol: None,
                    tsoffset: None,
                });
                for (i, (link, f)) in frames.iter().enumerate().take(24) {
                    let iface = u32::from(*link == LinkType::RAW);
                    if *link == LinkType::ETHERNET || *link == LinkType::RAW {
                        w.epb(iface, 1_700_000_000_000_000_000 + i as u64, f, f.len() as u32);
                    }
                }
                w.other();
                w.spb(&frames[0].1);
                out.push(w.out);
            }
            out
        }
        "extract" => sample_frames()
            .into_iter()
            .map(|(link, f)| {
                let sel = LINK_TYPES.iter().position(|l| *l == link).unwrap_or(0) as u8;
                let mut v = vec![sel, 0];
                v.extend_from_slice(&f);
                v
            })
            .collect(),
        // Structured targets: `arbitrary` reads any bytes, so random strings of a few
        // lengths are seeds that decode into varied scripts.
        "tracker_ops" | "reassembly_oracle" | "defrag" => [64, 256, 1024, 4096, 16384]
            .iter()
            .flat_map(|&n| [rng.bytes(n), rng.bytes(n)])
            .collect(),
        _ => Vec::new(),
    }
}

/// The decoded form of a structured target's input (`tracker_ops`, `reassembly_oracle`),
/// for reading a crash: `cargo run --bin explain -- <target> <file>`.
pub fn explain(target: &str, data: &[u8]) -> String {
    let mut u = Unstructured::new(data);
    match target {
        "tracker_ops" => {
            let limits = Limits::arbitrary(&mut u);
            format!("{limits:#?}\n{:#?}", read_ops::<Op>(&mut u, TRACKER_OPS))
        }
        "reassembly_oracle" => format!("{:#?}", Script::arbitrary(&mut u)),
        "defrag" => {
            let limits = DefragLimits::arbitrary(&mut u);
            format!("{limits:#?}\n{:#?}", read_ops::<FragOp>(&mut u, DEFRAG_OPS))
        }
        _ => format!("{} bytes (not a structured target)", data.len()),
    }
}
