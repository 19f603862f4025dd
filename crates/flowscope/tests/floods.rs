//! Bounded memory under floods: what a passive monitor sees when someone aims traffic at
//! it. Each scenario asserts a measured bound twice: with the bytes the library accounts
//! for itself, and with the heap the process really holds, from an allocator that counts
//! live bytes (and, on Linux, the peak RSS the kernel reports).
//!
//! Scenarios run one at a time (a lock), so the process-wide measurements belong to the
//! one that is running.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// A global allocator is an `unsafe` trait; test binaries are the only place outside the
// library that need it (the library forbids unsafe code).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::event::{EndReason, FlowEvent};
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::packet::{LinkType, PacketView};
use flowscope::reassembly::MAX_RANGES;
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::{FlowTrackerConfig, OverflowPolicy};
use flowscope::Timestamp;

/// Counts the bytes the process has on the heap now, and their peak.
struct Live;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and
// only updates two counters on the side.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Heap measurements around one scenario.
struct Heap {
    before: usize,
    /// Resident set size when the peak was reset, if the OS lets us reset it.
    rss_before: Option<usize>,
}

impl Heap {
    fn start() -> Heap {
        // Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
        // Done first, so its own allocations are not counted as the scenario's.
        let rss_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let rss_before = if rss_reset { status_bytes("VmRSS:") } else { None };
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        Heap { before, rss_before }
    }

    /// Peak heap growth since `start`, in bytes.
    fn peak_growth(&self) -> usize {
        PEAK.load(Ordering::Relaxed).saturating_sub(self.before)
    }

    /// Peak RSS since `start` minus the RSS then: how much the OS saw the process grow,
    /// when it reports it.
    fn peak_rss_growth(&self) -> Option<usize> {
        Some(status_bytes("VmHWM:")?.saturating_sub(self.rss_before?))
    }
}

/// A `kB` line of /proc/self/status, in bytes.
fn status_bytes(name: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    Some(line.split_whitespace().nth(1)?.parse::<usize>().ok()? * 1024)
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A frame template whose fields are patched in place per packet (building each frame
/// from scratch would dominate the test's time). The decoder does not verify checksums.
struct Template {
    bytes: Vec<u8>,
}

// Offsets in an Ethernet / IPv4 (no options) / TCP frame.
const IP_SRC: usize = 26;
const TCP_SPORT: usize = 34;
const TCP_SEQ: usize = 38;

impl Template {
    fn set(&mut self, at: usize, value: &[u8]) -> &mut Self {
        self.bytes[at..at + value.len()].copy_from_slice(value);
        self
    }
}

fn ts(us: u64) -> Timestamp {
    Timestamp::from_nanos(1_700_000_000_000_000_000 + us * 1000)
}

/// Flows ended, and of those ended at a reassembly cap.
#[derive(Default)]
struct Ends {
    all: Cell<u64>,
    overflow: Cell<u64>,
}

fn count_events(ends: &Ends) -> impl FnMut(DriverEvent<'_, FiveTupleKey>) + '_ {
    move |e| {
        if let DriverEvent::Flow(FlowEvent::Ended { reason, .. }) = e {
            ends.all.set(ends.all.get() + 1);
            if reason == EndReason::BufferOverflow {
                ends.overflow.set(ends.overflow.get() + 1);
            }
        }
    }
}

#[test]
fn syn_flood_from_spoofed_sources_keeps_the_table_at_its_cap() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    const MAX_FLOWS: usize = 50_000;
    const SOURCES: u32 = 2_000_000;
    let heap = Heap::start();
    let config = FlowTrackerConfig::default().with_max_flows(MAX_FLOWS);
    let mut driver: FlowDriver<FiveTuple> = FlowDriver::new(FiveTuple::default(), config);
    let mut t = Template {
        bytes: Frame::tcp(v4("10.0.0.1"), 1024, v4("192.0.2.80"), 80, flags::SYN, 7, 0).build(),
    };
    let ended = Ends::default();
    let mut sink = count_events(&ended);
    let (mut at_cap, mut steady) = (0, None);
    for i in 0..SOURCES {
        // Every packet from a different spoofed address and port.
        let src = (0x0a00_0000u32 + i).to_be_bytes();
        t.set(IP_SRC, &src).set(TCP_SPORT, &((i % 60_000) as u16 + 1024).to_be_bytes());
        let view = PacketView::new(ts(u64::from(i)), LinkType::ETHERNET, &t.bytes);
        driver.handle_packet(&view, &mut sink);
        // The index grows with the flows, and once more under the first churn at the
        // cap (removal tombstones); after that the flood must cost nothing.
        if i as usize + 1 == 4 * MAX_FLOWS {
            at_cap = driver.memory_bytes();
            steady = Some(Heap::start());
        }
        debug_assert!(driver.tracker().flow_count() <= MAX_FLOWS);
    }
    let tracker = driver.tracker();
    let s = tracker.stats();
    assert_eq!(tracker.flow_count(), MAX_FLOWS);
    assert_eq!(s.flows_created, u64::from(SOURCES));
    assert_eq!(s.flows_ended.evicted, u64::from(SOURCES) - MAX_FLOWS as u64);
    assert_eq!(ended.all.get(), s.flows_ended.evicted);
    // The driver's account stopped growing once the table was full and churning ...
    let accounted = driver.memory_bytes();
    assert_eq!(accounted, at_cap, "the driver grew under steady churn at its cap");
    let per_flow = accounted / MAX_FLOWS;
    let table_per_flow = tracker.memory_bytes() / MAX_FLOWS;
    // SYNs carry nothing to reassemble, so no flow takes stream state: the table is all.
    assert!(per_flow <= 300, "{per_flow} bytes per flow");
    assert_eq!(per_flow, table_per_flow);
    // ... and the heap agrees with it: everything the driver allocated is in the account
    // (the peak adds the old index, briefly, while it grew), and at the cap 1.8 million
    // more sources cost nothing.
    let peak = heap.peak_growth();
    assert!(
        peak <= accounted + accounted / 8,
        "heap peak {peak} B, driver's account {accounted} B"
    );
    // The OS agrees too, where it says: resident memory grew by the account plus
    // allocator and page slack, not by anything per source.
    if let Some(rss) = heap.peak_rss_growth() {
        assert!(rss <= accounted + (8 << 20), "peak RSS grew {rss} B, account {accounted} B");
    }
    let steady = steady.expect("the flood filled the table").peak_growth();
    assert!(steady <= 64 << 10, "at the cap the heap still grew {steady} bytes");
    eprintln!(
        "SYN flood: {SOURCES} sources, {MAX_FLOWS} flows, driver {accounted} B ({per_flow} \
         B/flow, of which the table {table_per_flow}), heap peak {peak} B, growth under churn \
         at the cap {steady} B, peak RSS growth {:?}",
        heap.peak_rss_growth()
    );
}

/// A driver with the given caps and `flows` connections from 10.0.0.1 (ports from
/// `first_port`) to 10.0.0.2:80, each past its handshake.
fn connected(
    flows: u16,
    first_port: u16,
    max_buffer: usize,
    global: usize,
    policy: OverflowPolicy,
) -> FlowDriver<FiveTuple> {
    let config = FlowTrackerConfig::default()
        .with_max_buffer(max_buffer)
        .with_max_reassembly_memory(global)
        .with_overflow_policy(policy);
    let mut driver = FlowDriver::new(FiveTuple::default(), config);
    for f in 0..flows {
        handshake(&mut driver, v4("10.0.0.1"), first_port + f, v4("10.0.0.2"));
    }
    driver
}

/// One connection's handshake, so both sides are anchored.
fn handshake(driver: &mut FlowDriver<FiveTuple>, client: IpAddr, port: u16, server: IpAddr) {
    let mut sink = |_: DriverEvent<'_, FiveTupleKey>| {};
    for f in [
        Frame::tcp(client, port, server, 80, flags::SYN, 999, 0),
        Frame::tcp(server, 80, client, port, flags::SYN_ACK, 4999, 1000),
        Frame::tcp(client, port, server, 80, flags::ACK, 1000, 5000),
    ] {
        let bytes = f.build();
        driver.handle_packet(&PacketView::new(ts(0), LinkType::ETHERNET, &bytes), &mut sink);
    }
}

#[test]
fn one_byte_segments_above_a_hole_stay_under_both_caps() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    const FLOWS: u16 = 64;
    const MAX_BUFFER: usize = 64 << 10;
    const GLOBAL: usize = 1 << 20;
    const SEGMENTS: u32 = 4_000;
    for policy in [OverflowPolicy::SlidingWindow, OverflowPolicy::DropFlow] {
        let mut driver = connected(FLOWS, 20_000, MAX_BUFFER, GLOBAL, policy);
        let (client, server) = (v4("10.0.0.1"), v4("10.0.0.2"));
        let heap = Heap::start();
        let ended = Ends::default();
        let mut sink = count_events(&ended);
        let mut t = Template {
            bytes: Frame::tcp(client, 20_000, server, 80, flags::ACK, 0, 5000)
                .payload(b"x")
                .build(),
        };
        // Byte 0 of every stream never comes; bytes 2, 4, 6, ... and then the odd ones
        // above them do, one per packet, round robin over the flows.
        for i in 0..SEGMENTS {
            let offset = if i < SEGMENTS / 2 { 2 * (i + 1) } else { 2 * (i - SEGMENTS / 2) + 3 };
            for f in 0..FLOWS {
                t.set(TCP_SPORT, &(20_000 + f).to_be_bytes())
                    .set(TCP_SEQ, &(1000 + offset).to_be_bytes());
                let view = PacketView::new(ts(1), LinkType::ETHERNET, &t.bytes);
                driver.handle_packet(&view, &mut sink);
                let d = driver.stats();
                assert!(d.buffered_bytes as usize <= GLOBAL, "{d:?}");
            }
        }
        let d = *driver.stats();
        assert!(d.buffered_high_watermark as usize <= GLOBAL, "{d:?}");
        // Separate 1-byte ranges: the range cap binds long before the byte cap.
        assert!(d.buffered_high_watermark <= u64::from(FLOWS) * MAX_RANGES as u64, "{d:?}");
        let growth = heap.peak_growth();
        match policy {
            OverflowPolicy::SlidingWindow => {
                assert_eq!(d.overflow_aborts, 0);
                assert!(d.missed_bytes > 0, "holes were skipped at the cap");
            }
            _ => {
                assert_eq!(d.overflow_aborts, u64::from(FLOWS));
                assert_eq!(ended.overflow.get(), u64::from(FLOWS));
                assert_eq!(driver.tracker_stats().flows_ended.buffer_overflow, u64::from(FLOWS));
            }
        }
        driver.finish(&mut sink);
        assert_eq!(driver.stats().buffered_bytes, 0);
        // Each held range costs its byte, its slot and an allocation: well under 256
        // bytes; the pools of range storage are small and bounded.
        let bound = usize::from(FLOWS) * (MAX_RANGES * 256 + (64 << 10));
        assert!(growth <= bound, "{policy:?}: heap grew {growth} bytes, bound {bound}");
        if let Some(rss) = heap.peak_rss_growth() {
            assert!(rss <= bound, "{policy:?}: peak RSS grew {rss} bytes, bound {bound}");
        }
        eprintln!(
            "1-byte flood ({policy:?}): {FLOWS} flows x {SEGMENTS} segments, buffered peak \
             {} B accounted, heap peak growth {growth} B, peak RSS growth {:?}",
            d.buffered_high_watermark,
            heap.peak_rss_growth()
        );
    }
}

#[test]
fn many_flows_filling_their_buffers_meet_the_global_cap() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    const FLOWS: u16 = 200;
    const MAX_BUFFER: usize = 64 << 10;
    const GLOBAL: usize = 2 << 20; // room for 32 full sides, not 200
    const MSS: usize = 1460;
    let payload = vec![0x42u8; MSS];
    for policy in [OverflowPolicy::SlidingWindow, OverflowPolicy::DropFlow] {
        let mut driver = connected(FLOWS, 30_000, MAX_BUFFER, GLOBAL, policy);
        let (client, server) = (v4("10.0.0.1"), v4("10.0.0.2"));
        let heap = Heap::start();
        let ended = Ends::default();
        let mut sink = count_events(&ended);
        let mut t = Template {
            bytes: Frame::tcp(client, 30_000, server, 80, flags::ACK, 0, 5000)
                .payload(&payload)
                .build(),
        };
        // Every flow loses its first segment, then sends 40 more: 58,400 bytes each
        // behind the hole, within its own cap, but together far beyond the global one.
        for k in 1..=40u32 {
            for f in 0..FLOWS {
                t.set(TCP_SPORT, &(30_000 + f).to_be_bytes())
                    .set(TCP_SEQ, &(1000 + k * MSS as u32).to_be_bytes());
                let view = PacketView::new(ts(u64::from(k)), LinkType::ETHERNET, &t.bytes);
                driver.handle_packet(&view, &mut sink);
                assert!(driver.stats().buffered_bytes as usize <= GLOBAL);
            }
        }
        let d = *driver.stats();
        assert!(d.buffered_high_watermark as usize <= GLOBAL, "{d:?}");
        // The global cap, not the per-side one, was what bound: the sides together
        // reached it.
        assert!(d.buffered_high_watermark as usize > GLOBAL - MSS * usize::from(FLOWS), "{d:?}");
        let growth = heap.peak_growth();
        match policy {
            OverflowPolicy::SlidingWindow => {
                assert_eq!(d.overflow_aborts, 0);
                assert!(d.missed_bytes > 0);
                assert_eq!(driver.tracker().flow_count(), usize::from(FLOWS));
            }
            _ => {
                // Flows that found no room were ended; the rest kept buffering (no side
                // passed its own cap, so only the global one can have ended them).
                assert!(d.overflow_aborts > 0 && d.overflow_aborts < u64::from(FLOWS), "{d:?}");
                assert_eq!(ended.overflow.get(), d.overflow_aborts);
                assert_eq!(driver.tracker_stats().flows_ended.buffer_overflow, d.overflow_aborts);
            }
        }
        // Buffers hold at most twice their bytes (growth by doubling), plus bookkeeping.
        assert!(growth <= 2 * GLOBAL + (1 << 20), "{policy:?}: heap grew {growth} bytes");
        if let Some(rss) = heap.peak_rss_growth() {
            assert!(rss <= 2 * GLOBAL + (4 << 20), "{policy:?}: peak RSS grew {rss} bytes");
        }
        driver.finish(&mut sink);
        assert_eq!(driver.stats().buffered_bytes, 0);
        eprintln!(
            "global cap ({policy:?}): {FLOWS} flows, buffered peak {} B of {GLOBAL}, \
             {} flows ended at the cap, heap peak growth {growth} B, peak RSS growth {:?}",
            d.buffered_high_watermark,
            d.overflow_aborts,
            heap.peak_rss_growth()
        );
    }
}

/// First fragments that never complete, from a million spoofed sources (each opens a
/// datagram and holds 1,480 bytes): the defragmenter stays within its datagram and byte
/// caps, dropping the oldest, and the heap with it.
#[test]
fn fragment_flood_stays_within_the_defragmenter_caps() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    const SOURCES: u32 = 1_000_000;
    const MAX_DATAGRAMS: usize = 4096;
    const MAX_BYTES: usize = 4 << 20;
    let config = FlowTrackerConfig::default().with_defrag(
        flowscope::defrag::DefragConfig::default()
            .with_max_datagrams(MAX_DATAGRAMS)
            .with_max_bytes(MAX_BYTES),
    );
    let mut driver: FlowDriver<FiveTuple> = FlowDriver::new(FiveTuple::default(), config);
    // Measured from here: the table's slab is reserved up front, and no flow is made.
    let base = driver.memory_bytes();
    let heap = Heap::start();
    let mut t = Template {
        bytes: Frame::raw(v4("10.0.0.1"), v4("192.0.2.80"), 17)
            .payload(&[0x55; 1480])
            .fragment(0, true, 1)
            .build(),
    };
    let ended = Ends::default();
    let mut sink = count_events(&ended);
    for i in 0..SOURCES {
        t.set(IP_SRC, &(0x0a00_0000u32 + i).to_be_bytes());
        let view = PacketView::new(ts(u64::from(i)), LinkType::ETHERNET, &t.bytes);
        driver.handle_packet(&view, &mut sink);
    }
    let s = driver.tracker().stats();
    let d = s.defrag;
    let memory = driver.memory_bytes() - base;
    let growth = heap.peak_growth();
    eprintln!(
        "fragment flood: {} fragments, {} datagrams dropped at the caps, account {memory} B, heap growth {growth} B, RSS growth {:?}",
        d.fragments,
        d.dropped_cap,
        heap.peak_rss_growth()
    );
    assert_eq!(
        (d.fragments, d.absorbed, d.reassembled),
        (u64::from(SOURCES), u64::from(SOURCES), 0)
    );
    assert_eq!(s.inputs(), s.outcomes());
    assert_eq!(s.flows_created, 0);
    // 1,480-byte datagrams: the byte cap binds first (4 MiB / ~1.5 KiB = 2,833 held).
    assert!(d.dropped_cap >= u64::from(SOURCES) - MAX_DATAGRAMS as u64);
    // Everything the defragmenter holds is within its byte cap plus bookkeeping for at
    // most MAX_DATAGRAMS slots (their buffers are kept up to 16 KiB each for reuse).
    assert!(memory <= MAX_BYTES + MAX_DATAGRAMS * 2048 + (1 << 20), "{memory}");
    assert!(growth <= 2 * memory + (2 << 20), "heap grew {growth} B for an account of {memory} B");
    if let Some(rss) = heap.peak_rss_growth() {
        assert!(rss <= 64 << 20, "RSS grew {rss} B");
    }
}
