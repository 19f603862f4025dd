//! What tunnels and fragments cost, per packet.
//!
//! - `decap/<kind>`: opening one tunnelled packet, given its outer headers: finding the
//!   tunnel, decoding the inner packet in place, keying it; `decap/baseline-bare-inner`
//!   decodes and keys the same inner packets sent bare, so the difference is what the
//!   tunnel adds.
//! - `tracker/plain-<on|off>`: the tracker over plain TCP (4,096 flows round robin)
//!   with tunnel and fragment handling on (the default) and off, so the price
//!   non-tunnelled traffic pays shows as the difference.
//! - `tracker/vxlan`: the same traffic inside VXLAN, end to end (two flows per packet).
//! - `defrag/ipv4-3-pieces`: reassembling 1,400-byte UDP datagrams cut in three.
//!
//! `cargo bench -p flowscope --features testkit,tracker --bench tunnels`; ns/packet is
//! the time per iteration divided by the element count criterion prints.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowscope::defrag::{DefragConfig, Defragmenter, Push};
use flowscope::event::FlowEvent;
use flowscope::extract::{FiveTuple, FiveTupleKey, FlowExtractor};
use flowscope::packet::{
    decode, decode_encapsulated, encapsulated, Headers, LinkType, PacketView, TunnelConfig,
};
use flowscope::testkit::{flags, Frame};
use flowscope::tracker::{FlowTracker, FlowTrackerConfig};
use flowscope::Timestamp;

const N: usize = 4096;

fn inner(i: usize) -> Frame {
    let a: IpAddr = "10.1.0.1".parse().unwrap();
    let b: IpAddr = "10.2.0.1".parse().unwrap();
    Frame::tcp(a, 1024 + i as u16, b, 443, flags::ACK, i as u32, 7).payload(&[0x42; 256])
}

fn outer_udp(port: u16, payload: &[u8]) -> Vec<u8> {
    let a: IpAddr = "172.16.0.1".parse().unwrap();
    let b: IpAddr = "172.16.0.2".parse().unwrap();
    Frame::udp(a, 40000, b, port).payload(payload).build()
}

fn outer_ip(proto: u8, payload: &[u8]) -> Vec<u8> {
    let a: IpAddr = "172.16.0.1".parse().unwrap();
    let b: IpAddr = "172.16.0.2".parse().unwrap();
    Frame::raw(a, b, proto).payload(payload).build()
}

fn sets() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let eth = |i| inner(i).build();
    let ip = |i| inner(i).link(LinkType::RAW).build();
    let cat = |parts: &[&[u8]]| parts.concat();
    vec![
        ("plain", (0..N).map(eth).collect()),
        (
            "vxlan",
            (0..N).map(|i| outer_udp(4789, &cat(&[&[8, 0, 0, 0, 0, 0, 1, 0], &eth(i)]))).collect(),
        ),
        (
            "geneve",
            (0..N)
                .map(|i| outer_udp(6081, &cat(&[&[0, 0, 0x65, 0x58, 0, 0, 1, 0], &eth(i)])))
                .collect(),
        ),
        (
            "gtp_u",
            (0..N)
                .map(|i| outer_udp(2152, &cat(&[&[0x30, 0xff, 1, 0x28, 0, 0, 0, 1], &ip(i)])))
                .collect(),
        ),
        (
            "gre",
            (0..N)
                .map(|i| outer_ip(47, &cat(&[&[0x20, 0, 8, 0], &[0, 0, 0, 9], &ip(i)])))
                .collect(),
        ),
        ("ip_in_ip", (0..N).map(|i| outer_ip(4, &ip(i))).collect()),
    ]
}

fn view(f: &[u8], i: usize) -> PacketView<'_> {
    PacketView::new(Timestamp::from_nanos(1_000_000_000 + i as u64 * 1000), LinkType::ETHERNET, f)
}

fn bench(c: &mut Criterion) {
    let sets = sets();
    let config = TunnelConfig::default();
    let ex = FiveTuple::new();

    let mut g = c.benchmark_group("decap");
    g.throughput(Throughput::Elements(N as u64));
    // The baseline: decoding and keying the same inner packets had they come bare. What
    // a tunnel adds is `decap/<kind>` minus this.
    // 256 frames (about 90 KB) passed over 16 times: the headers stay in cache, so what
    // is timed is the work, not memory latency. (Over 4,096 distinct frames, 1.5 MB, a
    // tunnelled packet's inner headers sit on a second cache line, and the extra miss
    // doubles the difference; in a capture pipeline the frame was just written and is
    // warm.)
    const HOT: usize = 256;
    let plain: Vec<&Vec<u8>> = sets[0].1.iter().take(HOT).cycle().take(N).collect();
    g.bench_function("baseline-bare-inner", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for f in &plain {
                if let Ok(x) = ex.extract(black_box(&view(f, 0))) {
                    acc = acc
                        .wrapping_add(u64::from(x.key.lo().1) ^ u64::from(x.headers.payload_len));
                }
            }
            acc
        })
    });
    for (name, frames) in sets.iter().skip(1) {
        let frames: Vec<&Vec<u8>> = frames.iter().take(HOT).cycle().take(N).collect();
        let outer: Vec<Headers> = frames.iter().map(|f| decode(&view(f, 0)).unwrap()).collect();
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut acc = 0u64;
                for (f, h) in frames.iter().zip(&outer) {
                    let v = view(f, 0);
                    let Some(Ok(e)) = encapsulated(f, black_box(h), &config) else { continue };
                    let Ok(i) = decode_encapsulated(&v, h, &e) else { continue };
                    if let Ok(x) = ex.extract_headers(f, i) {
                        acc = acc.wrapping_add(
                            u64::from(x.key.lo().1) ^ u64::from(x.headers.payload_len),
                        );
                    }
                }
                acc
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("tracker");
    g.throughput(Throughput::Elements(N as u64));
    let run = |t: &mut FlowTracker<FiveTuple>,
               frames: &[Vec<u8>],
               clock: &mut u64,
               ev: &mut Vec<FlowEvent<FiveTupleKey>>| {
        for f in frames {
            *clock += 1000;
            let v = PacketView::new(Timestamp::from_nanos(*clock), LinkType::ETHERNET, f);
            t.handle_packet(black_box(&v), ev);
            ev.clear();
        }
    };
    let cases = [
        ("plain-on", &sets[0].1, FlowTrackerConfig::default()),
        (
            "plain-off",
            &sets[0].1,
            FlowTrackerConfig::default()
                .with_tunnels(TunnelConfig::disabled())
                .with_defrag(DefragConfig::disabled()),
        ),
        ("vxlan", &sets[1].1, FlowTrackerConfig::default()),
    ];
    for (name, frames, cfg) in cases {
        let mut t = FlowTracker::new(FiveTuple::new(), cfg.with_max_flows(1 << 16));
        let mut ev = Vec::with_capacity(64);
        let mut clock = 1_000_000_000u64;
        run(&mut t, frames, &mut clock, &mut ev);
        g.bench_function(name, |b| b.iter(|| run(&mut t, frames, &mut clock, &mut ev)));
    }
    g.finish();

    // Defragmentation: 1,400-byte UDP datagrams in three fragments, 1,000 host pairs.
    let mut frags = Vec::new();
    for f in 0..1000u32 {
        let c: IpAddr = format!("10.1.{}.{}", f / 250, f % 250 + 1).parse().unwrap();
        let s: IpAddr = "10.2.0.1".parse().unwrap();
        frags.extend(Frame::udp(c, 5000, s, 53).payload(&[3; 1400]).fragments(&[512, 1024], f));
    }
    let headers: Vec<Headers> = frags.iter().map(|f| decode(&view(f, 0)).unwrap()).collect();
    let mut g = c.benchmark_group("defrag");
    g.throughput(Throughput::Elements(frags.len() as u64));
    let mut d = Defragmenter::new(DefragConfig::default());
    g.bench_function("ipv4-3-pieces", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for (f, h) in frags.iter().zip(&headers) {
                if let Push::Complete(dg) = d.push(&view(f, 0), h) {
                    n += dg.frame.len() as u64;
                    d.recycle(dg);
                }
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
