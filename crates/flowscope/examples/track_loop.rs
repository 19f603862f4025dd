//! A fixed tracker workload for profilers (callgrind, perf): `flows` TCP flows round
//! robin (default 1, at most 2^24), `packets` packets (default 2M); prints the time per
//! packet of the loop (frames are built before it) and the tracker's counters.
//! `cargo run --release -p flowscope --example track_loop --features testkit [flows] [packets]`
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use flowscope::extract::FiveTuple;
use flowscope::packet::{LinkType, PacketView};
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::{FlowTracker, FlowTrackerConfig};
use flowscope::Timestamp;

fn main() {
    let flows: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let flows = flows.clamp(1, 1 << 24);
    let packets: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
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
    let started = Instant::now();
    for i in 0..packets {
        clock += 100;
        let f = &frames[(i % u64::from(flows)) as usize];
        let view = PacketView::new(Timestamp::from_nanos(clock), LinkType::ETHERNET, f);
        std::hint::black_box(t.handle_packet(&view, &mut events));
        events.clear();
    }
    let ns = started.elapsed().as_nanos() as f64 / packets.max(1) as f64;
    eprintln!("{flows} flows, {packets} packets: {ns:.1} ns/packet");
    println!("{:?}", t.stats());
}
