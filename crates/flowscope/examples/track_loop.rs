//! A fixed tracker workload for profilers (callgrind, perf): one TCP flow, 2M packets.
//! `cargo run --release -p flowscope --example track_loop --features testkit`
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::IpAddr;

use flowscope::extract::FiveTuple;
use flowscope::packet::{LinkType, PacketView};
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::{FlowTracker, FlowTrackerConfig};
use flowscope::Timestamp;

fn main() {
    let flows: u16 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let packets: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let c: IpAddr = "10.0.0.1".parse().unwrap();
    let s: IpAddr = "10.0.0.2".parse().unwrap();
    let frames: Vec<Vec<u8>> = (0..flows)
        .map(|i| {
            Frame::tcp(c, 1024 + i, s, 443, flags::PSH_ACK, 1, 1).payload(&[0x17; 200]).build()
        })
        .collect();
    let mut t: FlowTracker<FiveTuple> =
        FlowTracker::new(FiveTuple::new(), FlowTrackerConfig::default().with_max_flows(65536));
    let mut events = Vec::with_capacity(16);
    let mut clock = 1_700_000_000_000_000_000u64;
    for i in 0..packets {
        clock += 100;
        let f = &frames[(i % u64::from(flows)) as usize];
        let view = PacketView::new(Timestamp::from_nanos(clock), LinkType::ETHERNET, f);
        std::hint::black_box(t.handle_packet(&view, &mut events));
        events.clear();
    }
    println!("{:?}", t.stats());
}
