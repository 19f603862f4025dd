//! Side by side: this flowscope and the published flowscope 0.22 (renamed `upstream`)
//! over the same packets, held in memory, on one core.
//!
//! ```text
//! cargo run --release --manifest-path bench/compare/Cargo.toml -- [CAPTURE.pcap ...]
//! ```
//!
//! For each input it times (a) tracker against tracker and (b) driver (tracking plus TCP
//! reassembly with the default reassembler) against driver, best of five runs, and
//! prints ns/packet, packets/s and the ratio. Then, on a capture it generates with light
//! reordering (about one segment in eight swapped with its successor), it counts the
//! stream sides each driver reassembles intact: byte for byte what the sender sent.
//!
//! Ours runs twice: one packet at a time (`handle_packet`), and through `handle_batch`
//! ("batch"), which reports the same but looks groups of flows up ahead once the table
//! outgrows the caches. Upstream has one way. After the captures it times generated
//! captures with 16,384 and a million flows live at once (trackers only for the latter).
//!
//! Inputs are Ethernet captures (upstream's `PacketView` has no link type); frames of
//! other link types are skipped and counted. Without arguments it reads the large
//! captures in `../shared/pcaps/large/` beside the checkout.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::event::{FlowEvent, FlowSide};
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::packet::{LinkType, PacketView, TcpFlags};
use flowscope::pcap::PcapReader;
use flowscope::testkit::{flags, Frame, Rng};
use flowscope::tracker::{FlowTracker, FlowTrackerConfig};
use flowscope::Timestamp;

const RUNS: usize = 5;
const MAX_FLOWS: usize = 1 << 20;

/// Packets in one buffer, each a range of it plus a timestamp.
struct Packets {
    name: String,
    data: Vec<u8>,
    index: Vec<(u64, usize, usize)>, // (ns since the epoch, start, end)
    skipped: usize,
}

impl Packets {
    fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.index.iter().map(|&(ts, s, e)| (ts, &self.data[s..e]))
    }

    fn bytes(&self) -> usize {
        self.data.len()
    }

    fn push(&mut self, ts: u64, frame: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(frame);
        self.index.push((ts, start, self.data.len()));
    }
}

fn load(path: &Path) -> Packets {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = PcapReader::new(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut p = Packets { name, data: Vec::new(), index: Vec::new(), skipped: 0 };
    while let Ok(Some(pkt)) = reader.next_packet() {
        if pkt.link == LinkType::ETHERNET {
            p.push(pkt.ts.as_nanos(), pkt.data);
        } else {
            p.skipped += 1;
        }
    }
    p
}

fn ours_config() -> FlowTrackerConfig {
    FlowTrackerConfig::default().with_max_flows(MAX_FLOWS)
}

fn upstream_config() -> upstream::FlowTrackerConfig {
    let mut c = upstream::FlowTrackerConfig::default();
    c.max_flows = MAX_FLOWS;
    c.idle_timeout_tcp = Duration::from_secs(300);
    c.idle_timeout_udp = Duration::from_secs(60);
    c.idle_timeout_other = Duration::from_secs(30);
    c
}

fn upstream_ts(ns: u64) -> upstream::Timestamp {
    upstream::Timestamp::new((ns / 1_000_000_000) as u32, (ns % 1_000_000_000) as u32)
}

/// Best of `RUNS` wall-clock times of `run`, each on a fresh state from `make` (built
/// outside the timing: a table sized for a million flows is set up once per capture,
/// not once per packet).
fn best<T>(mut make: impl FnMut() -> T, mut run: impl FnMut(T)) -> Duration {
    (0..RUNS)
        .map(|_| {
            let state = make();
            let t = Instant::now();
            run(state);
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ours_tracker() -> FlowTracker<FiveTuple> {
    FlowTracker::new(FiveTuple::new(), ours_config())
}

fn run_ours_tracker(mut t: FlowTracker<FiveTuple>, p: &Packets) {
    for (ts, frame) in p.iter() {
        let view = PacketView::new(Timestamp::from_nanos(ts), LinkType::ETHERNET, frame);
        black_box(t.handle_packet(&view, &mut |e| {
            black_box(e);
        }));
    }
    t.finish(&mut |e| {
        black_box(e);
    });
    black_box(t.stats().flows_created);
}

/// Views over `p`, `BATCH_VIEWS` at a time, for `handle_batch`.
const BATCH_VIEWS: usize = 1024;

fn views<'a>(p: &'a Packets, group: &[(u64, usize, usize)], out: &mut Vec<PacketView<'a>>) {
    out.clear();
    out.extend(group.iter().map(|&(ts, s, e)| {
        PacketView::new(Timestamp::from_nanos(ts), LinkType::ETHERNET, &p.data[s..e])
    }));
}

fn run_ours_tracker_batched(mut t: FlowTracker<FiveTuple>, p: &Packets) {
    handle_batched(&mut t, p);
    t.finish(&mut |e| {
        black_box(e);
    });
    black_box(t.stats().flows_created);
}

/// Every packet of `p` through `handle_batch`, `BATCH_VIEWS` at a time (no `finish`).
fn handle_batched(t: &mut FlowTracker<FiveTuple>, p: &Packets) {
    let mut group = Vec::with_capacity(BATCH_VIEWS);
    for chunk in p.index.chunks(BATCH_VIEWS) {
        views(p, chunk, &mut group);
        t.handle_batch(
            &group,
            &mut |e| {
                black_box(e);
            },
            |d| {
                black_box(d);
            },
        );
    }
}

type UpTracker = upstream::FlowTracker<upstream::extract::FiveTuple>;

fn upstream_tracker() -> UpTracker {
    upstream::FlowTracker::with_config(
        upstream::extract::FiveTuple::bidirectional(),
        upstream_config(),
    )
}

fn run_upstream_tracker(mut t: UpTracker, p: &Packets) {
    for (ts, frame) in p.iter() {
        black_box(t.track(upstream::PacketView::new(frame, upstream_ts(ts))));
    }
    black_box(t.finish());
}

fn ours_driver() -> FlowDriver<FiveTuple> {
    FlowDriver::new(FiveTuple::new(), ours_config())
}

fn run_ours_driver(mut d: FlowDriver<FiveTuple>, p: &Packets) {
    let mut bytes = 0usize;
    let mut sink = |e: DriverEvent<'_, FiveTupleKey>| {
        if let DriverEvent::Data { bytes: b, .. } = e {
            bytes += b.len();
        }
    };
    for (ts, frame) in p.iter() {
        let view = PacketView::new(Timestamp::from_nanos(ts), LinkType::ETHERNET, frame);
        black_box(d.handle_packet(&view, &mut sink));
    }
    d.finish(&mut sink);
    black_box(bytes);
}

fn run_ours_driver_batched(mut d: FlowDriver<FiveTuple>, p: &Packets) {
    let mut bytes = 0usize;
    let mut sink = |e: DriverEvent<'_, FiveTupleKey>| {
        if let DriverEvent::Data { bytes: b, .. } = e {
            bytes += b.len();
        }
    };
    let mut group = Vec::with_capacity(BATCH_VIEWS);
    for chunk in p.index.chunks(BATCH_VIEWS) {
        views(p, chunk, &mut group);
        d.handle_batch(&group, &mut sink, |disp| {
            black_box(disp);
        });
    }
    d.finish(&mut sink);
    black_box(bytes);
}

type UpDriver =
    upstream::FlowDriver<upstream::extract::FiveTuple, upstream::BufferedReassemblerFactory>;

fn upstream_driver() -> UpDriver {
    upstream::FlowDriver::with_config(
        upstream::extract::FiveTuple::bidirectional(),
        upstream::BufferedReassemblerFactory::default(),
        upstream_config(),
    )
}

fn run_upstream_driver(mut d: UpDriver, p: &Packets) {
    for (ts, frame) in p.iter() {
        black_box(d.track(upstream::PacketView::new(frame, upstream_ts(ts))));
    }
    black_box(d.finish());
}

fn report(what: &str, p: &Packets, ours: Duration, theirs: Duration) {
    let n = p.index.len() as f64;
    let ns = |d: Duration| d.as_nanos() as f64 / n;
    let mpps = |d: Duration| n / d.as_secs_f64() / 1e6;
    println!(
        "  {what:<8} ours {:>7.1} ns/pkt {:>6.2} Mpkt/s {:>6.0} MB/s | upstream {:>7.1} ns/pkt {:>6.2} Mpkt/s | ratio {:>5.1}x",
        ns(ours),
        mpps(ours),
        p.bytes() as f64 / ours.as_secs_f64() / 1e6,
        ns(theirs),
        mpps(theirs),
        theirs.as_secs_f64() / ours.as_secs_f64(),
    );
}

fn compare(p: &Packets, drivers: bool) {
    println!(
        "{}: {} packets, {:.1} MB{}",
        p.name,
        p.index.len(),
        p.bytes() as f64 / 1e6,
        if p.skipped > 0 {
            format!(" ({} non-Ethernet frames skipped)", p.skipped)
        } else {
            String::new()
        }
    );
    let o = best(ours_tracker, |t| run_ours_tracker(t, p));
    let ob = best(ours_tracker, |t| run_ours_tracker_batched(t, p));
    let u = best(upstream_tracker, |t| run_upstream_tracker(t, p));
    report("tracker", p, o, u);
    report("  batch", p, ob, u);
    if !drivers {
        return;
    }
    let o = best(ours_driver, |d| run_ours_driver(d, p));
    let ob = best(ours_driver, |d| run_ours_driver_batched(d, p));
    let u = best(upstream_driver, |d| run_upstream_driver(d, p));
    report("driver", p, o, u);
    report("  batch", p, ob, u);
}

/// TCP connections whose segments are lightly reordered, and every stream side sent.
fn reordered_capture(flows: u32) -> (Packets, Vec<Vec<u8>>) {
    const SEGMENTS: usize = 16;
    const MSS: usize = 1000;
    let mut rng = Rng::new(0x0c0f_fee0_5eed_0001);
    let mut p = Packets {
        name: "generated, light reordering".into(),
        data: Vec::new(),
        index: Vec::new(),
        skipped: 0,
    };
    let mut sent = Vec::new();
    let mut t = 1_700_000_000_000_000_000u64;
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for f in 0..flows {
        let c = IpAddr::from([10, 1, (f >> 8) as u8, f as u8]);
        let s = IpAddr::from([10, 2, 0, 1]);
        let port = 10_000 + (f % 50_000) as u16;
        let (ci, si) = (rng.next_u64() as u32, rng.next_u64() as u32);
        frames.clear();
        frames.push(Frame::tcp(c, port, s, 80, flags::SYN, ci, 0).build());
        frames.push(Frame::tcp(s, 80, c, port, flags::SYN_ACK, si, ci.wrapping_add(1)).build());
        frames.push(
            Frame::tcp(c, port, s, 80, flags::ACK, ci.wrapping_add(1), si.wrapping_add(1)).build(),
        );
        let mut side = |from_client: bool, frames: &mut Vec<Vec<u8>>, rng: &mut Rng| {
            let stream: Vec<u8> = (0..SEGMENTS * MSS).map(|_| rng.next_u64() as u8).collect();
            let mut segs: Vec<Vec<u8>> = stream
                .chunks(MSS)
                .enumerate()
                .map(|(i, chunk)| {
                    let off = (i * MSS) as u32;
                    let f = if from_client {
                        Frame::tcp(
                            c,
                            port,
                            s,
                            80,
                            flags::ACK | TcpFlags::PSH,
                            ci.wrapping_add(1 + off),
                            si.wrapping_add(1),
                        )
                    } else {
                        Frame::tcp(
                            s,
                            80,
                            c,
                            port,
                            flags::ACK | TcpFlags::PSH,
                            si.wrapping_add(1 + off),
                            ci.wrapping_add(1 + (SEGMENTS * MSS) as u32),
                        )
                    };
                    f.payload(chunk).build()
                })
                .collect();
            rng.swap_neighbours(&mut segs, 8);
            frames.extend(segs);
            sent.push(stream);
        };
        side(true, &mut frames, &mut rng);
        side(false, &mut frames, &mut rng);
        let (cend, send) = (
            ci.wrapping_add(1 + (SEGMENTS * MSS) as u32),
            si.wrapping_add(1 + (SEGMENTS * MSS) as u32),
        );
        frames.push(Frame::tcp(c, port, s, 80, TcpFlags::FIN | flags::ACK, cend, send).build());
        frames.push(
            Frame::tcp(s, 80, c, port, TcpFlags::FIN | flags::ACK, send, cend.wrapping_add(1))
                .build(),
        );
        frames.push(
            Frame::tcp(c, port, s, 80, flags::ACK, cend.wrapping_add(1), send.wrapping_add(1))
                .build(),
        );
        for fr in &frames {
            t += 10_000;
            p.push(t, fr);
        }
    }
    (p, sent)
}

/// `flows` TCP connections already under way (no handshake seen), all live at once:
/// `rounds` rounds of one 64-byte segment per flow, 1 us apart, clients and servers
/// taking turns by round. A table of a million flows is far larger than any cache.
fn wide_capture(flows: u32, rounds: u32) -> Packets {
    let mut p = Packets {
        name: format!("generated, {flows} flows live at once, {rounds} packets each"),
        data: Vec::new(),
        index: Vec::new(),
        skipped: 0,
    };
    let s = IpAddr::from([10, 2, 0, 1]);
    let mut t = 1_700_000_000_000_000_000u64;
    for round in 0..rounds {
        let from_client = round % 2 == 0;
        // What this side sent before (seq) and what the other side sent before (ack).
        let (seq, ack) = (1 + round / 2 * 64, 1 + round.div_ceil(2) * 64);
        for f in 0..flows {
            let c = IpAddr::from([10, 1 + (f >> 16) as u8, (f >> 8) as u8, f as u8]);
            let frame = if from_client {
                Frame::tcp(c, 40_000, s, 443, flags::PSH_ACK, seq, ack)
            } else {
                Frame::tcp(s, 443, c, 40_000, flags::PSH_ACK, seq, ack)
            };
            t += 1_000;
            p.push(t, &frame.payload(&[0x17; 64]).build());
        }
    }
    p
}

/// Write `p` as a classic pcap file (Ethernet, nanosecond timestamps).
fn write_pcap(path: &Path, p: &Packets) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    // Magic (nanosecond resolution), version 2.4, zone, sigfigs, snaplen, LINKTYPE_ETHERNET.
    for field in [0xa1b2_3c4du32, 0x0004_0002, 0, 0, 65_535, 1] {
        out.write_all(&field.to_le_bytes())?;
    }
    for (ts, frame) in p.iter() {
        let len = frame.len() as u32;
        let (secs, nanos) = ((ts / 1_000_000_000) as u32, (ts % 1_000_000_000) as u32);
        for field in [secs, nanos, len, len] {
            out.write_all(&field.to_le_bytes())?;
        }
        out.write_all(frame)?;
    }
    out.flush()
}

/// How many of `sent` appear, byte for byte, among `got` (each used once).
fn intact(sent: &[Vec<u8>], got: Vec<Vec<u8>>) -> usize {
    let mut pool: HashMap<Vec<u8>, usize> = HashMap::new();
    for g in got {
        *pool.entry(g).or_default() += 1;
    }
    sent.iter()
        .filter(|s| match pool.get_mut(*s) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count()
}

fn ours_streams(p: &Packets) -> Vec<Vec<u8>> {
    let mut d: FlowDriver<FiveTuple> = FlowDriver::new(FiveTuple::new(), ours_config());
    let mut open: HashMap<(FiveTupleKey, FlowSide), Vec<u8>> = HashMap::new();
    let mut done = Vec::new();
    let mut sink = |e: DriverEvent<'_, FiveTupleKey>| match e {
        DriverEvent::Data { key, side, bytes, .. } => {
            open.entry((key, side)).or_default().extend_from_slice(bytes)
        }
        DriverEvent::Flow(FlowEvent::Ended { key, .. }) => {
            for side in [FlowSide::Initiator, FlowSide::Responder] {
                if let Some(b) = open.remove(&(key, side)) {
                    done.push(b);
                }
            }
        }
        _ => {}
    };
    for (ts, frame) in p.iter() {
        d.handle_packet(
            &PacketView::new(Timestamp::from_nanos(ts), LinkType::ETHERNET, frame),
            &mut sink,
        );
    }
    d.finish(&mut sink);
    done
}

/// Upstream's default `BufferedReassembler`, with what it holds handed over when the
/// driver drops it (its flow ended).
struct Tap {
    inner: upstream::BufferedReassembler,
    out: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl upstream::Reassembler for Tap {
    fn segment(&mut self, seq: u32, payload: &[u8], ts: upstream::Timestamp) {
        self.inner.segment(seq, payload, ts);
    }
    fn fin(&mut self) {
        self.inner.fin();
    }
    fn rst(&mut self) {
        self.inner.rst();
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let bytes = self.inner.take();
        if !bytes.is_empty() {
            if let Ok(mut out) = self.out.lock() {
                out.push(bytes);
            }
        }
    }
}

struct TapFactory(Arc<Mutex<Vec<Vec<u8>>>>);

impl<K: Send + 'static> upstream::ReassemblerFactory<K> for TapFactory {
    type Reassembler = Tap;
    fn new_reassembler(&mut self, _key: &K, _side: upstream::FlowSide) -> Tap {
        // What `BufferedReassemblerFactory::default()` builds: no cap.
        Tap { inner: upstream::BufferedReassembler::new(), out: Arc::clone(&self.0) }
    }
}

fn upstream_streams(p: &Packets) -> Vec<Vec<u8>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    {
        let mut d = upstream::FlowDriver::with_config(
            upstream::extract::FiveTuple::bidirectional(),
            TapFactory(Arc::clone(&out)),
            upstream_config(),
        );
        for (ts, frame) in p.iter() {
            d.track(upstream::PacketView::new(frame, upstream_ts(ts)));
        }
        d.finish();
    }
    let v = std::mem::take(&mut *out.lock().unwrap());
    v
}

/// Time ours alone on `p`, once one packet at a time and once batched: the tracker, or
/// with `driver` the driver.
fn profile(p: &Packets, driver: bool) {
    let time = |run: &dyn Fn()| {
        let t = Instant::now();
        run();
        t.elapsed().as_nanos() as f64 / p.index.len().max(1) as f64
    };
    let (one, batched) = if driver {
        (
            time(&|| run_ours_driver(ours_driver(), p)),
            time(&|| run_ours_driver_batched(ours_driver(), p)),
        )
    } else {
        (
            time(&|| run_ours_tracker(ours_tracker(), p)),
            time(&|| run_ours_tracker_batched(ours_tracker(), p)),
        )
    };
    let what = if driver { "driver" } else { "tracker" };
    eprintln!("ours, {what}: {}: {one:.1} ns/packet, batched {batched:.1} ns/packet", p.name);
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    // For profilers: our tracker alone, once, on the million-flow capture.
    if args.first().is_some_and(|a| a.as_os_str() == "--profile-wide") {
        let p = wide_capture(1 << 20, 4);
        let mut tracker = ours_tracker();
        let t = Instant::now();
        handle_batched(&mut tracker, &p);
        let handled = t.elapsed();
        tracker.finish(&mut |e| {
            black_box(e);
        });
        eprintln!("ours, batched, once: packets {handled:?}, finish {:?}", t.elapsed() - handled);
        return;
    }
    // The generated wide capture as a pcap file, for whole-process runs of the CLI:
    // `--write-wide FILE [FLOWS] [ROUNDS]` (default 1,048,576 flows, 4 rounds).
    if args.first().is_some_and(|a| a.as_os_str() == "--write-wide") {
        let Some(path) = args.get(1) else { panic!("--write-wide FILE [FLOWS] [ROUNDS]") };
        let number = |i: usize, default: u32| {
            args.get(i).map_or(default, |a| {
                a.to_string_lossy().parse().unwrap_or_else(|e| panic!("{}: {e}", a.display()))
            })
        };
        let p = wide_capture(number(2, 1 << 20), number(3, 4));
        write_pcap(path, &p).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{}: {} packets ({})", path.display(), p.index.len(), p.name);
        return;
    }
    // For profilers: our tracker (`--profile`) or driver (`--profile-driver`) alone, once
    // one packet at a time and once batched, on any capture.
    if let Some(driver) = args.first().and_then(|a| match a.to_str() {
        Some("--profile") => Some(false),
        Some("--profile-driver") => Some(true),
        _ => None,
    }) {
        for path in &args[1..] {
            profile(&load(path), driver);
        }
        return;
    }
    let inputs = if args.is_empty() {
        let large = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps/large");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&large)
            .unwrap_or_else(|e| {
                panic!("{}: {e} (pass capture files as arguments)", large.display())
            })
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
        v.sort();
        v
    } else {
        args
    };
    println!("best of {RUNS} runs, one core, packets in memory; ratio = upstream time / ours");
    for path in &inputs {
        compare(&load(path), true);
    }
    compare(&wide_capture(1 << 14, 4), true);
    // Upstream's driver takes time that grows with the square of the live flows (one run
    // of two rounds: 0.92 s at 16,384 flows, 23.4 s at 65,536), so at a million it would
    // not finish: trackers only.
    compare(&wide_capture(1 << 20, 4), false);
    println!("  (driver left out: upstream's driver time grows with the square of the live flows)");
    let (gen, sent) = reordered_capture(4000);
    compare(&gen, true);
    let (ours, theirs) = (intact(&sent, ours_streams(&gen)), intact(&sent, upstream_streams(&gen)));
    println!(
        "  intact stream sides with light reordering: ours {ours} of {}, upstream {theirs} of {} ({:.1}%)",
        sent.len(),
        sent.len(),
        100.0 * theirs as f64 / sent.len() as f64
    );
}
