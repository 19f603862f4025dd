//! parse + extract, per packet: synthetic Ethernet/IPv4/TCP frames, and real captures
//! from `../shared/pcaps` loaded into memory first (so only the core is timed). Also the
//! pcap reader over a file's bytes in memory, one record at a time and in batches.
//!
//! `cargo bench -p flowscope --bench extract` (criterion reports time per iteration and
//! packets/s; each iteration is one pass over the packet set, so ns/packet is the time
//! divided by the element count it prints).
#![allow(clippy::disallowed_methods, clippy::disallowed_types, missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowscope::extract::{FiveTuple, FlowExtractor};
use flowscope::packet::{decode, LinkType, PacketView};
use flowscope::pcap::PcapReader;
use flowscope::testkit::{flags, Frame};
use flowscope::Timestamp;

struct Owned {
    ts: Timestamp,
    link: LinkType,
    data: Vec<u8>,
    orig_len: u32,
}

fn synthetic(n: usize) -> Vec<Owned> {
    let a: IpAddr = "10.1.0.1".parse().unwrap();
    let b: IpAddr = "10.2.0.1".parse().unwrap();
    (0..n)
        .map(|i| {
            let f = Frame::tcp(a, 1024 + i as u16, b, 443, flags::PSH_ACK, i as u32, 7)
                .payload(&[0x42; 512])
                .build();
            Owned {
                ts: Timestamp::from_nanos(i as u64),
                link: LinkType::ETHERNET,
                orig_len: f.len() as u32,
                data: f,
            }
        })
        .collect()
}

fn load(path: &Path) -> Option<Vec<Owned>> {
    let file = std::fs::File::open(path).ok()?;
    let mut r = PcapReader::new(std::io::BufReader::new(file)).ok()?;
    let mut out = Vec::new();
    while let Ok(Some(p)) = r.next_packet() {
        out.push(Owned { ts: p.ts, link: p.link, data: p.data.to_vec(), orig_len: p.orig_len });
    }
    Some(out)
}

fn run_extract(pkts: &[Owned]) -> u64 {
    let ex = FiveTuple::new();
    let mut acc = 0u64;
    for p in pkts {
        let view = PacketView { ts: p.ts, link: p.link, frame: &p.data, orig_len: p.orig_len };
        if let Ok(e) = ex.extract(black_box(&view)) {
            acc = acc.wrapping_add(e.key.lo().1 as u64 ^ e.headers.payload_len as u64);
        }
    }
    acc
}

fn run_decode(pkts: &[Owned]) -> u64 {
    let mut acc = 0u64;
    for p in pkts {
        let view = PacketView { ts: p.ts, link: p.link, frame: &p.data, orig_len: p.orig_len };
        if let Ok(h) = decode(black_box(&view)) {
            acc = acc.wrapping_add(h.payload_len as u64);
        }
    }
    acc
}

fn bench(c: &mut Criterion) {
    let mut sets: Vec<(String, Vec<Owned>)> =
        vec![("synthetic-eth-ipv4-tcp".into(), synthetic(4096))];
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps/large");
    for name in ["zeek__echo-connections.pcap", "merged__permissive-mix-787-captures.pcap"] {
        match load(&shared.join(name)) {
            Some(p) => sets.push((name.trim_end_matches(".pcap").into(), p)),
            None => eprintln!("skipping {name}: ../shared not found"),
        }
    }
    let mut g = c.benchmark_group("parse+extract");
    for (name, pkts) in &sets {
        g.throughput(Throughput::Elements(pkts.len() as u64));
        g.bench_function(format!("five_tuple/{name}"), |b| b.iter(|| run_extract(pkts)));
        g.bench_function(format!("decode_only/{name}"), |b| b.iter(|| run_decode(pkts)));
    }
    g.finish();

    let mut g = c.benchmark_group("pcap_reader");
    for name in ["zeek__echo-connections.pcap", "merged__permissive-mix-787-captures.pcap"] {
        let Ok(bytes) = std::fs::read(shared.join(name)) else { continue };
        let name = name.trim_end_matches(".pcap");
        g.throughput(Throughput::Elements(read_all(&bytes, 0)));
        g.bench_function(format!("next_packet/{name}"), |b| b.iter(|| read_all(&bytes, 0)));
        g.bench_function(format!("next_batch_64/{name}"), |b| b.iter(|| read_all(&bytes, 64)));
    }
    g.finish();
}

/// Read a capture from memory: one record at a time (`batch == 0`) or `batch` at once.
fn read_all(bytes: &[u8], batch: usize) -> u64 {
    let mut r = PcapReader::new(bytes).unwrap();
    let mut acc = 0u64;
    if batch == 0 {
        while let Ok(Some(p)) = r.next_packet() {
            acc = acc.wrapping_add(u64::from(black_box(p).orig_len));
        }
    } else {
        while let Ok(b) = r.next_batch(batch) {
            if b.is_empty() {
                break;
            }
            for p in b.iter() {
                acc = acc.wrapping_add(u64::from(black_box(p).orig_len));
            }
        }
    }
    black_box(acc);
    r.stats().packets
}

criterion_group!(benches, bench);
criterion_main!(benches);
