//! Write a large synthetic capture for benchmarks, the same bytes for the same arguments:
//!
//! ```text
//! cargo run --release -p flowscope --features testkit --example make_large -- OUT.pcap [PACKETS] [FLOWS]
//! ```
//!
//! Defaults: 1,000,000 packets in 100,000 flows. The mix: 70% TCP connections
//! (handshake, data both ways, about one data segment in sixteen swapped with its
//! successor, FIN close), 25% UDP request/response exchanges, 5% ICMP echo; one flow in
//! five over IPv6. About 10,000 flows are live at any moment, interleaved at random;
//! packets are 2 µs apart. Frames come from `flowscope::testkit`, so Wireshark reads them
//! cleanly; the file is written as it is generated (memory stays small).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;

use flowscope::packet::TcpFlags;
use flowscope::testkit::{flags, Frame, Rng};

/// The frames of flow number `n`, in wire order, about `per_flow` of them.
fn flow(n: u64, per_flow: u64, rng: &mut Rng) -> VecDeque<Vec<u8>> {
    let v6 = n % 5 == 4;
    let (c, s): (IpAddr, IpAddr) = if v6 {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[8..16].copy_from_slice(&n.to_be_bytes());
        let mut b = a;
        b[4] = 1;
        (a.into(), b.into())
    } else {
        let x = n as u32;
        (
            IpAddr::from([10, (x >> 16) as u8, (x >> 8) as u8, x as u8]),
            IpAddr::from([172, 16, (x >> 8) as u8 & 0x0f, x as u8]),
        )
    };
    let sport = 1024 + (n % 60_000) as u16;
    let mut out = VecDeque::new();
    match rng.below(100) {
        0..=69 => {
            let dport = [80u16, 443, 22, 8080][(n % 4) as usize];
            let (ci, si) = (rng.next_u64() as u32, rng.next_u64() as u32);
            let data = per_flow.saturating_sub(6).max(2);
            let (mut cs, mut ss) = (ci.wrapping_add(1), si.wrapping_add(1));
            out.push_back(Frame::tcp(c, sport, s, dport, flags::SYN, ci, 0).build());
            out.push_back(Frame::tcp(s, dport, c, sport, flags::SYN_ACK, si, cs).build());
            out.push_back(Frame::tcp(c, sport, s, dport, flags::ACK, cs, ss).build());
            let mut segs: Vec<Vec<u8>> = Vec::new();
            for k in 0..data {
                let len = 100 + rng.below(1300) as usize;
                let body = vec![(n as u8) ^ (k as u8); len];
                let f = if k % 3 == 0 {
                    let f = Frame::tcp(c, sport, s, dport, flags::ACK | TcpFlags::PSH, cs, ss);
                    cs = cs.wrapping_add(len as u32);
                    f
                } else {
                    let f = Frame::tcp(s, dport, c, sport, flags::ACK | TcpFlags::PSH, ss, cs);
                    ss = ss.wrapping_add(len as u32);
                    f
                };
                segs.push(f.payload(&body).build());
            }
            rng.swap_neighbours(&mut segs, 16);
            out.extend(segs);
            let fin = TcpFlags::FIN | flags::ACK;
            out.push_back(Frame::tcp(c, sport, s, dport, fin, cs, ss).build());
            out.push_back(Frame::tcp(s, dport, c, sport, fin, ss, cs.wrapping_add(1)).build());
            out.push_back(
                Frame::tcp(c, sport, s, dport, flags::ACK, cs.wrapping_add(1), ss.wrapping_add(1))
                    .build(),
            );
        }
        70..=94 => {
            let dport = [53u16, 123, 443][(n % 3) as usize];
            for k in 0..per_flow.max(2) {
                let len = 20 + rng.below(400) as usize;
                let f = if k % 2 == 0 {
                    Frame::udp(c, sport, s, dport)
                } else {
                    Frame::udp(s, dport, c, sport)
                };
                out.push_back(f.payload(&vec![k as u8; len]).build());
            }
        }
        _ => {
            let id = (n as u16).to_be_bytes();
            for k in 0..per_flow.max(2) {
                let seq = ((k / 2) as u16).to_be_bytes();
                let rest = [id[0], id[1], seq[0], seq[1]];
                // Echo request and reply (ICMPv6 numbers them 128 and 129).
                let f = match (v6, k % 2) {
                    (false, 0) => Frame::icmp(c, s, 8, 0, rest),
                    (false, _) => Frame::icmp(s, c, 0, 0, rest),
                    (true, 0) => Frame::icmp(c, s, 128, 0, rest),
                    (true, _) => Frame::icmp(s, c, 129, 0, rest),
                };
                out.push_back(f.payload(&[0x61; 56]).build());
            }
        }
    }
    out
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: make_large OUT.pcap [PACKETS] [FLOWS]");
        std::process::exit(2);
    };
    let packets: u64 = args.next().map_or(1_000_000, |a| a.parse().expect("PACKETS"));
    let flows: u64 = args.next().map_or(100_000, |a| a.parse().expect("FLOWS")).max(1);
    let per_flow = (packets / flows).max(2);
    let live = flows.min(10_000) as usize;
    let mut rng = Rng::new(0x1a26_e5ee_d000_0001);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    // Classic pcap, little-endian, microseconds, Ethernet.
    out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&[0; 8])?;
    out.write_all(&65535u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;
    let mut active: Vec<VecDeque<Vec<u8>>> = Vec::with_capacity(live);
    let (mut started, mut written) = (0u64, 0u64);
    let mut t_us = 1_767_225_600_000_000u64;
    while written < packets {
        while active.len() < live && started < flows {
            active.push(flow(started, per_flow, &mut rng));
            started += 1;
        }
        if active.is_empty() {
            // Every flow is out: start another round of flow numbers.
            if started >= flows {
                started = 0;
                continue;
            }
        }
        let i = rng.below(active.len() as u64) as usize;
        let Some(frame) = active[i].pop_front() else {
            active.swap_remove(i);
            continue;
        };
        t_us += 2;
        out.write_all(&((t_us / 1_000_000) as u32).to_le_bytes())?;
        out.write_all(&((t_us % 1_000_000) as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&frame)?;
        written += 1;
        if active[i].is_empty() {
            active.swap_remove(i);
        }
    }
    out.flush()?;
    println!("{path}: {written} packets, {} flows started", started.min(flows));
    Ok(())
}
