//! A fixed driver workload for profilers (callgrind, perf): 64 TCP flows sending
//! 1,400-byte segments in order, each acknowledged, as in `benches/driver.rs`.
//! `cargo run --release -p flowscope --example drive_loop --features testkit -- [ROUNDS]`
//! (frames are built first; `--toggle-collect='*handle_packet*'` leaves the builder out)
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::IpAddr;

use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::packet::{LinkType, PacketView};
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::FlowTrackerConfig;
use flowscope::Timestamp;

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let c: IpAddr = "10.1.0.1".parse().unwrap();
    let s: IpAddr = "10.2.0.1".parse().unwrap();
    let payload = vec![0x42u8; 1400];
    let mut d: FlowDriver<FiveTuple> =
        FlowDriver::new(FiveTuple::new(), FlowTrackerConfig::default());
    let mut clock = 1_700_000_000_000_000_000u64;
    let mut delivered = 0u64;
    let mut sink = |e: DriverEvent<'_, FiveTupleKey>| {
        if let DriverEvent::Data { bytes, .. } = e {
            delivered += bytes.len() as u64;
        }
    };
    let mut frames = Vec::new();
    for f in 0..64u16 {
        let port = 20_000 + f;
        frames.push(Frame::tcp(c, port, s, 443, flags::SYN, 0, 0).build());
        frames.push(Frame::tcp(s, 443, c, port, flags::SYN_ACK, 0, 1).build());
        frames.push(Frame::tcp(c, port, s, 443, flags::ACK, 1, 1).build());
    }
    for i in 0..rounds {
        for f in 0..64u16 {
            let port = 20_000 + f;
            let seq = 1 + i.wrapping_mul(1400);
            let data = Frame::tcp(c, port, s, 443, flags::PSH_ACK, seq, 1).payload(&payload);
            frames.push(data.build());
            let ack = seq.wrapping_add(1400);
            frames.push(Frame::tcp(s, 443, c, port, flags::ACK, 1, ack).build());
        }
    }
    for f in &frames {
        clock += 1_000;
        let view = PacketView::new(Timestamp::from_nanos(clock), LinkType::ETHERNET, f);
        d.handle_packet(&view, &mut sink);
    }
    d.finish(&mut sink);
    println!("{delivered} bytes delivered");
}
