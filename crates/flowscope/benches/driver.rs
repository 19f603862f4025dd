//! The driver (tracking + reassembly) per packet: in-order bulk transfer, the same with
//! heavy reordering, with and without a meaningful buffer cap, and a real capture end to
//! end. Frames are built in memory first (7.5 MB, so they stay in cache as a capture
//! being read does; at 37 MB the same run spends half its time waiting on memory);
//! each timed iteration feeds a fresh driver.
//!
//! `cargo bench -p flowscope --bench driver --features testkit,pcap`
#![allow(clippy::disallowed_methods, clippy::disallowed_types, missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::packet::{LinkType, PacketView};
use flowscope::pcap::PcapReader;
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::FlowTrackerConfig;
use flowscope::Timestamp;

const FLOWS: u16 = 64;
const SEGMENTS: u32 = 40;
const MSS: usize = 1400;

/// Handshakes, then per flow `SEGMENTS` data segments of `MSS` bytes, each followed by
/// the server's ACK; with `reorder`, every other pair of segments is swapped.
fn bulk(reorder: bool) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let c: IpAddr = "10.1.0.1".parse().unwrap();
    let s: IpAddr = "10.2.0.1".parse().unwrap();
    let payload = vec![0x42u8; MSS];
    let mut setup = Vec::new();
    for f in 0..FLOWS {
        let port = 20_000 + f;
        setup.push(Frame::tcp(c, port, s, 443, flags::SYN, 0, 0).build());
        setup.push(Frame::tcp(s, 443, c, port, flags::SYN_ACK, 0, 1).build());
        setup.push(Frame::tcp(c, port, s, 443, flags::ACK, 1, 1).build());
    }
    let mut data = Vec::new();
    for i in 0..SEGMENTS {
        let order = if reorder && i % 4 < 2 { i ^ 1 } else { i };
        for f in 0..FLOWS {
            let port = 20_000 + f;
            let seq = 1 + order * MSS as u32;
            data.push(
                Frame::tcp(c, port, s, 443, flags::PSH_ACK, seq, 1).payload(&payload).build(),
            );
            let ack = 1 + (i + 1) * MSS as u32;
            data.push(Frame::tcp(s, 443, c, port, flags::ACK, 1, ack).build());
        }
    }
    (setup, data)
}

/// Frames back to back in one buffer, as a capture file or a NIC ring holds them: the
/// next frame's headers are where the hardware prefetcher expects them. (Frames in
/// separate allocations made every header a cache miss and measured memory, not the
/// driver.)
struct Packed {
    buf: Vec<u8>,
    frames: Vec<(usize, usize)>,
}

impl Packed {
    fn new(frames: &[Vec<u8>]) -> Self {
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        for f in frames {
            ranges.push((buf.len(), f.len()));
            buf.extend_from_slice(f);
        }
        Packed { buf, frames: ranges }
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.frames.iter().map(|&(at, len)| &self.buf[at..at + len])
    }
}

fn feed<'a>(
    d: &mut FlowDriver<FiveTuple>,
    frames: impl Iterator<Item = &'a [u8]>,
    clock: &mut u64,
) -> u64 {
    let mut bytes = 0u64;
    for f in frames {
        *clock += 1_000;
        let view = PacketView::new(Timestamp::from_nanos(*clock), LinkType::ETHERNET, f);
        d.handle_packet(&view, &mut |e: DriverEvent<'_, FiveTupleKey>| {
            if let DriverEvent::Data { bytes: b, .. } = e {
                bytes += b.len() as u64;
            }
        });
    }
    bytes
}

/// `warm`: before the timed pass, the same flows run once to their end, so the timed
/// pass takes its stream states from the driver's pool, as a long-running driver does,
/// instead of allocating them (and faulting in their pages).
fn run_bulk(c: &mut Criterion, name: &str, reorder: bool, config: FlowTrackerConfig, warm: bool) {
    let (setup, data) = bulk(reorder);
    let (setup, data) = (Packed::new(&setup), Packed::new(&data));
    let mut g = c.benchmark_group("driver");
    g.throughput(Throughput::Elements(data.frames.len() as u64));
    g.bench_function(name, |b| {
        b.iter_batched_ref(
            || {
                let mut d = FlowDriver::new(FiveTuple::new(), config.clone());
                let mut clock = 1_700_000_000_000_000_000u64;
                if warm {
                    feed(&mut d, setup.iter(), &mut clock);
                    feed(&mut d, data.iter(), &mut clock);
                    d.finish(&mut |_: DriverEvent<'_, FiveTupleKey>| {});
                }
                feed(&mut d, setup.iter(), &mut clock);
                (d, clock)
            },
            |(d, clock)| {
                let delivered = feed(d, data.iter(), clock);
                let all = u64::from(FLOWS) * u64::from(SEGMENTS) * MSS as u64;
                // At the cap, holes are skipped and their late bytes never delivered.
                if config.max_buffer >= MSS {
                    assert_eq!(delivered, all);
                } else {
                    assert!(delivered < all);
                }
                black_box(delivered)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let uncapped = FlowTrackerConfig::default()
        .with_max_buffer(usize::MAX)
        .with_max_reassembly_memory(usize::MAX);
    run_bulk(c, "in_order_bulk", false, FlowTrackerConfig::default(), false);
    run_bulk(c, "in_order_bulk_no_caps", false, uncapped.clone(), false);
    // Keeping each side's last 4 or 64 KiB to compare retransmissions against: the one
    // copy in-order delivery then makes. With warm pools, beside the same without it.
    run_bulk(c, "in_order_bulk_warm", false, FlowTrackerConfig::default(), true);
    for (name, window) in [
        ("in_order_bulk_warm_retransmit_check_4k", 4 << 10),
        ("in_order_bulk_warm_retransmit_check_64k", 64 << 10),
    ] {
        let config = FlowTrackerConfig::default().with_retransmit_check_bytes(window);
        run_bulk(c, name, false, config, true);
    }
    run_bulk(c, "reordered_bulk", true, FlowTrackerConfig::default(), false);
    run_bulk(c, "reordered_bulk_no_caps", true, uncapped, false);
    // At the cap: a per-side buffer smaller than one segment, so every segment that
    // arrives ahead of its predecessor skips the hole (a gap) under SlidingWindow.
    run_bulk(
        c,
        "reordered_bulk_at_cap",
        true,
        FlowTrackerConfig::default().with_max_buffer(1000),
        false,
    );

    // A real capture end to end.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/pcaps/large/zeek__echo-connections.pcap");
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!("skipping the capture bench: {} not found", path.display());
        return;
    };
    let mut r = PcapReader::new(std::io::BufReader::new(file)).unwrap();
    let mut pkts = Vec::new();
    while let Ok(Some(p)) = r.next_packet() {
        pkts.push((p.ts, p.data.to_vec(), p.orig_len));
    }
    let mut g = c.benchmark_group("driver");
    g.throughput(Throughput::Elements(pkts.len() as u64));
    g.bench_function("zeek__echo-connections", |b| {
        b.iter(|| {
            let mut d: FlowDriver<FiveTuple> =
                FlowDriver::new(FiveTuple::new(), FlowTrackerConfig::default());
            let mut n = 0u64;
            let mut sink = |e: DriverEvent<'_, FiveTupleKey>| {
                if let DriverEvent::Data { bytes, .. } = e {
                    n += bytes.len() as u64;
                }
            };
            for (ts, data, orig) in &pkts {
                let view = PacketView::new(*ts, LinkType::ETHERNET, data).with_orig_len(*orig);
                d.handle_packet(&view, &mut sink);
            }
            d.finish(&mut sink);
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
