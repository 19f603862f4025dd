//! The tracker's cost per packet: one flow; 10k, 100k and 1M flows round robin (the last
//! larger than any cache); churn (every packet a new flow into a full table, evicting).
//! Frames are built in memory first, so only `handle_packet` (decode, key, lookup,
//! state) is timed.
//!
//! `cargo bench -p flowscope --bench tracker`
#![allow(clippy::disallowed_methods, clippy::disallowed_types, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flowscope::event::FlowEvent;
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::packet::{LinkType, PacketView};
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::{FlowTracker, FlowTrackerConfig};
use flowscope::Timestamp;

/// One data segment per flow, flows numbered 0..n (distinct client address and port).
fn frames(n: u32) -> Vec<Vec<u8>> {
    let server = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let template =
        Frame::tcp(server, 1, server, 443, flags::PSH_ACK, 1, 1).payload(&[0x17; 200]).build();
    (0..n)
        .map(|i| {
            // Patch the client address and port in a copy of one built frame: building a
            // million frames from scratch would dominate the bench's setup time.
            let mut f = template.clone();
            let addr = Ipv4Addr::from(0x0a00_0000 | (i >> 8)).octets();
            f[26..30].copy_from_slice(&addr);
            f[34..36].copy_from_slice(&(1024 + (i & 0xff) as u16).to_be_bytes());
            f
        })
        .collect()
}

struct Runner {
    tracker: FlowTracker<FiveTuple>,
    events: Vec<FlowEvent<FiveTupleKey>>,
    clock: u64,
}

impl Runner {
    fn new(max_flows: usize) -> Self {
        Runner {
            tracker: FlowTracker::new(
                FiveTuple::new(),
                FlowTrackerConfig::default().with_max_flows(max_flows),
            ),
            events: Vec::with_capacity(16),
            clock: 1_700_000_000_000_000_000,
        }
    }

    #[inline]
    fn pass(&mut self, frames: &[Vec<u8>]) {
        for f in frames {
            self.clock += 100;
            let view = PacketView::new(Timestamp::from_nanos(self.clock), LinkType::ETHERNET, f);
            black_box(self.tracker.handle_packet(&view, &mut self.events));
            self.events.clear();
        }
    }

    /// The same pass through `handle_batch`, 256 packets per call.
    #[inline]
    fn pass_batched<'a>(&mut self, frames: &'a [Vec<u8>], views: &mut Vec<PacketView<'a>>) {
        for group in frames.chunks(256) {
            views.clear();
            for f in group {
                self.clock += 100;
                views.push(PacketView::new(
                    Timestamp::from_nanos(self.clock),
                    LinkType::ETHERNET,
                    f,
                ));
            }
            self.tracker.handle_batch(views, &mut self.events, |d| {
                black_box(d);
            });
            self.events.clear();
        }
    }
}

fn round_robin(c: &mut Criterion, name: &str, flows: u32, reps: usize) {
    let set = frames(flows);
    // Repeat a small set so one timed pass is long enough to measure.
    let pass: Vec<Vec<u8>> = set.iter().cycle().take(set.len() * reps).cloned().collect();
    let mut r = Runner::new((flows as usize).max(1).next_power_of_two().max(1024));
    r.pass(&set); // create the flows before timing
    let per_flow = r.tracker.memory_bytes() as f64 / r.tracker.config().max_flows as f64;
    eprintln!(
        "{name}: {} live flows; table {} bytes at capacity, {per_flow:.0} bytes per flow",
        r.tracker.flow_count(),
        r.tracker.memory_bytes()
    );
    let mut g = c.benchmark_group("tracker");
    g.throughput(Throughput::Elements(pass.len() as u64));
    if flows >= 100_000 {
        g.sample_size(10).measurement_time(Duration::from_secs(10));
    }
    g.bench_function(name, |b| b.iter(|| r.pass(&pass)));
    let mut views = Vec::with_capacity(256);
    g.bench_function(format!("{name}_batched"), |b| b.iter(|| r.pass_batched(&pass, &mut views)));
    g.finish();
}

/// With features `metrics` and `tracing` on and `FLOWSCOPE_BENCH_RECORDER` set, install a
/// recording metrics recorder and an event-collecting tracing subscriber first, to
/// measure the hooks' cost when someone is listening.
fn install_recorders() {
    #[cfg(all(feature = "metrics", feature = "tracing"))]
    if std::env::var_os("FLOWSCOPE_BENCH_RECORDER").is_some() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let _ = metrics::set_global_recorder(recorder);
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        eprintln!("recorder and subscriber installed");
    }
}

fn bench(c: &mut Criterion) {
    install_recorders();
    round_robin(c, "one_flow", 1, 4096);
    round_robin(c, "10k_flows_round_robin", 10_000, 1);
    round_robin(c, "100k_flows_round_robin", 100_000, 1);
    round_robin(c, "1m_flows_round_robin", 1 << 20, 1);

    // Churn: 1M distinct flows into a table of 64k, so every packet evicts the least
    // recently active flow and creates a new one.
    let set = frames(1 << 20);
    let mut g = c.benchmark_group("tracker");
    g.throughput(Throughput::Elements(set.len() as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    g.bench_function("churn_full_table_evicting", |b| {
        b.iter_batched_ref(
            || {
                let mut r = Runner::new(1 << 16);
                r.pass(&set[..1 << 16]);
                r
            },
            |r| r.pass(&set),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
