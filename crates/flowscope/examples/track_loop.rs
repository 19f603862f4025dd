//! A fixed tracker workload for profilers (callgrind, perf) and quick timings: `flows`
//! TCP flows (default 1, at most 2^24), created first, then `packets` packets (default
//! 2M) visiting them in slot order, or with `stride` > 1 jumping `stride` flows at a
//! time (an odd stride co-prime with `flows` visits all of them in a scattered order,
//! as real traffic does); `batched` hands them over 64 at a time through
//! `handle_batch`. Prints the time per packet of the timed loop and the counters.
//!
//! `cargo run --release -p flowscope --example track_loop --features testkit -- [flows] [packets] [stride] [batched]`
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use flowscope::extract::FiveTuple;
use flowscope::packet::{LinkType, PacketView};
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::{FlowTracker, FlowTrackerConfig};
use flowscope::Timestamp;

/// The next packet: `f` 100 ns after the previous one.
fn view<'a>(f: &'a [u8], clock: &mut u64) -> PacketView<'a> {
    *clock += 100;
    PacketView::new(Timestamp::from_nanos(*clock), LinkType::ETHERNET, f)
}

fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let flows: u32 = arg(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let flows = flows.clamp(1, 1 << 24);
    let packets: u64 = arg(2).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let stride: u64 = arg(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    let batched = arg(4).is_some_and(|a| a == "batched");
    let s: IpAddr = "10.255.0.2".parse().unwrap();
    let frames: Vec<Vec<u8>> = (0..flows)
        .map(|i| {
            // Client address and port from the flow number: 65,536 ports per address.
            let c = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 16)));
            Frame::tcp(c, i as u16, s, 443, flags::PSH_ACK, 1, 1).payload(&[0x17; 200]).build()
        })
        .collect();
    let max_flows = (flows as usize).next_power_of_two().max(65536);
    let mut t: FlowTracker<FiveTuple> =
        FlowTracker::new(FiveTuple::new(), FlowTrackerConfig::default().with_max_flows(max_flows));
    let mut events = Vec::with_capacity(16);
    let mut clock = 1_700_000_000_000_000_000u64;
    for f in &frames {
        std::hint::black_box(t.handle_packet(&view(f, &mut clock), &mut events));
        events.clear();
    }
    let mut group = Vec::with_capacity(64);
    let started = Instant::now();
    let mut i = 0u64;
    while i < packets {
        let n = (packets - i).min(64);
        group.clear();
        group.extend((i..i + n).map(|k| {
            let f = &frames[((k * stride) % u64::from(flows)) as usize];
            view(f, &mut clock)
        }));
        if batched {
            t.handle_batch(&group, &mut events, |d| {
                std::hint::black_box(d);
            });
        } else {
            for v in &group {
                std::hint::black_box(t.handle_packet(v, &mut events));
            }
        }
        events.clear();
        i += n;
    }
    let ns = started.elapsed().as_nanos() as f64 / packets.max(1) as f64;
    let how = if batched { "batched" } else { "one at a time" };
    eprintln!("{flows} flows, {packets} packets, stride {stride}, {how}: {ns:.1} ns/packet");
    println!("{:?}", t.stats());
}
