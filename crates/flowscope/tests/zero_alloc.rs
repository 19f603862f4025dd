//! No allocation per packet in steady state: a counting global allocator watches the
//! tracker over in-order traffic, and over churn (every packet a new flow, table full,
//! evicting).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
// A global allocator is an `unsafe` trait; this test binary is the one place outside the
// library that needs it (the library forbids unsafe code).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;

use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::event::FlowEvent;
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::packet::{LinkType, PacketView};
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::{FlowTracker, FlowTrackerConfig};
use flowscope::Timestamp;

struct Counting;

thread_local! {
    // Only allocations made by the measuring thread count: the test harness allocates
    // on its own threads.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn frames(flows: u16, per_flow: u32) -> Vec<Vec<u8>> {
    let c: IpAddr = "10.0.0.1".parse().unwrap();
    let s: IpAddr = "10.0.0.2".parse().unwrap();
    let mut out = Vec::new();
    for i in 0..per_flow {
        for f in 0..flows {
            let port = 10_000 + f;
            let frame = match i {
                0 => Frame::tcp(c, port, s, 443, flags::SYN, 1000, 0),
                1 => Frame::tcp(s, 443, c, port, flags::SYN_ACK, 5000, 1001),
                // Contiguous data, 100 bytes every other step, each acknowledged next.
                _ if i % 2 == 0 => {
                    let seq = 1001 + (i / 2 - 1) * 100;
                    Frame::tcp(c, port, s, 443, flags::PSH_ACK, seq, 5001).payload(&[7; 100])
                }
                _ => Frame::tcp(s, 443, c, port, flags::ACK, 5001, 1001 + (i / 2) * 100),
            };
            out.push(frame.build());
        }
    }
    out
}

fn run(
    t: &mut FlowTracker<FiveTuple>,
    events: &mut Vec<FlowEvent<FiveTupleKey>>,
    frames: &[Vec<u8>],
    clock_ns: &mut u64,
) {
    for f in frames {
        *clock_ns += 1_000;
        let view = PacketView::new(Timestamp::from_nanos(*clock_ns), LinkType::ETHERNET, f);
        t.handle_packet(&view, events);
        events.clear();
    }
}

#[test]
fn tracker_steady_state_does_not_allocate() {
    // In-order traffic on 500 flows.
    let mut t =
        FlowTracker::new(FiveTuple::new(), FlowTrackerConfig::default().with_max_flows(4096));
    let mut events = Vec::with_capacity(64);
    let mut clock = 1_000_000_000u64;
    let warm = frames(500, 4);
    let steady = frames(500, 40);
    run(&mut t, &mut events, &warm, &mut clock);
    let before = allocs();
    run(&mut t, &mut events, &steady[2000..], &mut clock);
    let in_order = allocs() - before;
    assert_eq!(t.flow_count(), 500);

    // Churn: a table of 64 flows fed 1000 distinct flows round robin, so nearly every
    // packet evicts one flow and creates another.
    let mut t = FlowTracker::new(FiveTuple::new(), FlowTrackerConfig::default().with_max_flows(64));
    let churn = frames(1000, 2);
    run(&mut t, &mut events, &churn[..200], &mut clock);
    let before = allocs();
    run(&mut t, &mut events, &churn[200..], &mut clock);
    let churned = allocs() - before;
    assert!(t.stats().flows_ended.evicted > 1500, "{:?}", t.stats());

    assert_eq!(
        (in_order, churned),
        (0, 0),
        "allocations: in-order {in_order} over {} packets, churn {churned} over {} packets",
        steady.len() - 2000,
        churn.len() - 200
    );
}

#[test]
fn driver_in_order_streams_do_not_allocate() {
    driver_in_order(FlowTrackerConfig::default().with_max_flows(4096));
}

/// Keeping recent bytes to check retransmissions against allocates each stream state's
/// window once, with the state; delivering into it allocates nothing.
#[test]
fn driver_in_order_streams_with_retransmit_checks_do_not_allocate() {
    driver_in_order(
        FlowTrackerConfig::default().with_max_flows(4096).with_retransmit_check_bytes(4096),
    );
}

fn driver_in_order(config: FlowTrackerConfig) {
    let mut d: FlowDriver<FiveTuple> = FlowDriver::new(FiveTuple::new(), config);
    let mut delivered = 0u64;
    let mut clock = 1_000_000_000u64;
    let mut feed = |d: &mut FlowDriver<FiveTuple>, frames: &[Vec<u8>], delivered: &mut u64| {
        for f in frames {
            clock += 1_000;
            let view = PacketView::new(Timestamp::from_nanos(clock), LinkType::ETHERNET, f);
            d.handle_packet(&view, &mut |e: DriverEvent<'_, FiveTupleKey>| {
                if let DriverEvent::Data { bytes, .. } = e {
                    *delivered += bytes.len() as u64;
                }
            });
        }
    };
    // Handshakes and the first data: flows and their stream state are created here.
    let all = frames(500, 40);
    feed(&mut d, &all[..2000], &mut delivered);
    let before = allocs();
    feed(&mut d, &all[2000..], &mut delivered);
    let steady = allocs() - before;
    assert!(delivered >= 500 * 18 * 100, "{delivered}");
    assert_eq!(steady, 0, "allocations over {} in-order packets", all.len() - 2000);
}

/// The same in-order traffic, each frame wrapped in VXLAN (UDP/4789 between two VTEPs).
fn in_vxlan(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let a: IpAddr = "172.16.0.1".parse().unwrap();
    let b: IpAddr = "172.16.0.2".parse().unwrap();
    frames
        .iter()
        .map(|inner| {
            let payload = [&[0x08u8, 0, 0, 0, 0, 0, 0x2a, 0][..], inner].concat();
            Frame::udp(a, 40000, b, 4789).payload(&payload).build()
        })
        .collect()
}

/// A UDP datagram of 1,400 bytes between 500 host pairs, each cut into three IPv4
/// fragments (fragment ids run on, as a host's would).
fn fragmented(rounds: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for r in 0..rounds {
        for f in 0..500u32 {
            let c: IpAddr = format!("10.1.{}.{}", f / 250, f % 250 + 1).parse().unwrap();
            let s: IpAddr = "10.2.0.1".parse().unwrap();
            let datagram = Frame::udp(c, 5000, s, 53).payload(&[3; 1400]);
            out.extend(datagram.fragments(&[512, 1024], r * 500 + f));
        }
    }
    out
}

#[test]
fn tunnels_and_fragments_do_not_allocate_in_steady_state() {
    let mut events = Vec::with_capacity(64);
    let mut clock = 1_000_000_000u64;
    // VXLAN: the outer flow and 500 inner TCP flows.
    let mut t =
        FlowTracker::new(FiveTuple::new(), FlowTrackerConfig::default().with_max_flows(4096));
    let all = in_vxlan(&frames(500, 40));
    run(&mut t, &mut events, &all[..2000], &mut clock);
    let before = allocs();
    run(&mut t, &mut events, &all[2000..], &mut clock);
    let tunnelled = allocs() - before;
    assert_eq!(t.flow_count(), 501);
    assert_eq!(t.stats().tunnels.decapsulated(), all.len() as u64);

    // Fragments: after the first rounds, datagram buffers are reused.
    let mut t =
        FlowTracker::new(FiveTuple::new(), FlowTrackerConfig::default().with_max_flows(4096));
    let frags = fragmented(20);
    run(&mut t, &mut events, &frags[..3000], &mut clock);
    let before = allocs();
    run(&mut t, &mut events, &frags[3000..], &mut clock);
    let defragmented = allocs() - before;
    assert_eq!(t.stats().defrag.reassembled, 20 * 500);

    assert_eq!(
        (tunnelled, defragmented),
        (0, 0),
        "allocations: VXLAN {tunnelled} over {} packets, fragments {defragmented} over {}",
        all.len() - 2000,
        frags.len() - 3000
    );
}

/// `handle_batch` allocates nothing either, on both of its paths: a table of 500 flows
/// (groups handled one packet at a time) and one of 200,000 flows, about 50 MB of
/// entries, past the point where each group's flows are looked up ahead.
#[test]
fn batches_do_not_allocate_in_steady_state() {
    let s: IpAddr = "192.0.2.1".parse().unwrap();
    let data = |flows: u32, round: u32, from_client: bool| -> Vec<Vec<u8>> {
        (0..flows)
            .map(|i| {
                let c = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
                let (seq, ack) = (1 + round * 16, 1 + round * 16);
                let f = if from_client {
                    Frame::tcp(c, 40_000, s, 443, flags::PSH_ACK, seq, ack)
                } else {
                    Frame::tcp(s, 443, c, 40_000, flags::PSH_ACK, seq, ack + 16)
                };
                f.payload(&[7; 16]).build()
            })
            .collect()
    };
    for flows in [500u32, 200_000] {
        let config = FlowTrackerConfig::default().with_max_flows(1 << 18);
        let mut t = FlowTracker::new(FiveTuple::new(), config.clone());
        let mut d: FlowDriver<FiveTuple> = FlowDriver::new(FiveTuple::new(), config);
        let mut clock = 1_000_000_000u64;
        let mut delivered = 0u64;
        let mut events = Vec::with_capacity(64);
        let mut pass =
            |frames: &[Vec<u8>], t: &mut FlowTracker<FiveTuple>, d: &mut FlowDriver<FiveTuple>| {
                let views: Vec<PacketView<'_>> = frames
                    .iter()
                    .map(|f| {
                        clock += 100;
                        PacketView::new(Timestamp::from_nanos(clock), LinkType::ETHERNET, f)
                    })
                    .collect();
                let before = allocs();
                t.handle_batch(&views, &mut events, |_| {});
                events.clear();
                d.handle_batch(
                    &views,
                    &mut |e: DriverEvent<'_, FiveTupleKey>| {
                        if let DriverEvent::Data { bytes, .. } = e {
                            delivered += bytes.len() as u64;
                        }
                    },
                    |_| {},
                );
                allocs() - before
            };
        // Flows, index growth and stream state happen in the first two rounds.
        pass(&data(flows, 0, true), &mut t, &mut d);
        pass(&data(flows, 0, false), &mut t, &mut d);
        let steady = pass(&data(flows, 1, true), &mut t, &mut d)
            + pass(&data(flows, 1, false), &mut t, &mut d);
        assert_eq!(t.flow_count(), flows as usize);
        assert_eq!(delivered, u64::from(flows) * 4 * 16, "{flows} flows");
        assert_eq!(steady, 0, "allocations over {} batched packets", 4 * flows);
    }
}
