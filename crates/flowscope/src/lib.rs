//! flowscope: passive flow tracking for captured packets.
//!
//! flowscope turns captured frames into bidirectional flow records and reassembled TCP
//! byte streams. This crate is the *sans-IO core*: frames and their capture timestamps go
//! in, keys and events come out. It deliberately does **not** read files or sockets, read
//! a clock, spawn threads or draw random numbers: time is whatever the packets say, and
//! I/O belongs to the caller (the `pcap` feature adds a reader at the edge, and the
//! `flowscope` command-line tool drives the whole thing).
//!
//! ```text
//! bytes: pcap/pcapng file | live capture | caller's own buffers
//!   -> PacketView { ts, frame, link type }                      packet
//!   -> FlowExtractor::extract -> key, orientation, headers      extract
//!      (L4 info, TCP seq/ack/flags, payload offsets)
//!   -> flow table, TCP state, reassembly, events, metrics       (later modules)
//! ```
//!
//! # Example
//!
//! Key a TCP segment held in memory; the reply direction gets the same key:
//!
//! ```
//! use flowscope::extract::{FiveTuple, FlowExtractor, Orientation};
//! use flowscope::packet::{LinkType, PacketView};
//! use flowscope::Timestamp;
//!
//! // Ethernet / IPv4 10.0.0.2 -> 10.0.0.1 / TCP 40000 -> 80, SYN.
//! let mut frame = vec![
//!     0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00, // Ethernet
//!     0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, // IPv4: 40 bytes, TCP
//!     10, 0, 0, 2, 10, 0, 0, 1, // src, dst
//!     0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, // ports, seq 1, ack 0
//!     0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0, // data offset 5, SYN, window
//! ];
//! let ts = Timestamp::from_secs_micros(1_700_000_000, 0);
//! let view = PacketView::new(ts, LinkType::ETHERNET, &frame);
//! let syn = FiveTuple::default().extract(&view).expect("a TCP/IPv4 frame");
//! assert_eq!(syn.orientation, Orientation::Reverse); // 10.0.0.2 is the higher endpoint
//! assert_eq!(syn.key.lo(), ("10.0.0.1".parse().unwrap(), 80));
//! assert!(syn.tcp().unwrap().flags.syn());
//!
//! // Swap addresses and ports: same key, opposite orientation.
//! frame[26..30].copy_from_slice(&[10, 0, 0, 1]);
//! frame[30..34].copy_from_slice(&[10, 0, 0, 2]);
//! frame[34..38].copy_from_slice(&[0, 80, 0x9c, 0x40]);
//! let reply = FiveTuple::default().extract(&PacketView::new(ts, LinkType::ETHERNET, &frame)).unwrap();
//! assert_eq!(reply.key, syn.key);
//! assert_eq!(reply.orientation, Orientation::Forward);
//! ```
//!
//! # Features
//!
//! - `extractors` (default): flow keys, `extract::FlowExtractor`, Community ID.
//! - `tracker`, `reassembler` (default): the flow table and TCP reassembly.
//! - `metrics`, `tracing`: emit the observability vocabulary (off by default; zero cost
//!   when off).
//! - `pcap`: `pcap::PcapReader`, a streaming pcap/pcapng reader over `pcap-parser`.
//! - `testkit`: a frame builder and pcap writer for tests and benchmarks.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod packet;
pub mod time;

#[cfg(feature = "extractors")]
pub mod extract;

#[cfg(feature = "tracker")]
pub mod defrag;
#[cfg(feature = "tracker")]
pub mod event;
#[cfg(feature = "tracker")]
pub mod obs;
#[cfg(feature = "tracker")]
pub mod tracker;

#[cfg(feature = "reassembler")]
pub mod reassembly;

#[cfg(feature = "reassembler")]
pub mod driver;

#[cfg(feature = "pcap")]
pub mod pcap;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use time::Timestamp;
