//! Print each record of a capture: offset, timestamp, link type, lengths, and the flow
//! key or the reason there is none. `cargo run --example pcapdump --features pcap -- FILE`
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs::File;
use std::io::BufReader;

use flowscope::extract::{FiveTuple, FlowExtractor};
use flowscope::pcap::PcapReader;

fn main() {
    let path = std::env::args().nth(1).expect("usage: pcapdump FILE");
    let file = File::open(&path).expect("open");
    let mut reader = PcapReader::new(BufReader::new(file)).expect("header");
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => {
                let view = p.view();
                let what = match FiveTuple::new().extract(&view) {
                    Ok(e) => format!("{:?} {:?}", e.key, e.orientation),
                    Err(u) => format!("unmatched: {u}"),
                };
                println!(
                    "{:>8} {} link {} {}/{} {what}",
                    p.offset,
                    p.ts,
                    p.link.0,
                    p.data.len(),
                    p.orig_len
                );
            }
            Ok(None) => break,
            Err(e) => {
                println!("error: {e}");
                break;
            }
        }
    }
}
