//! Every shared capture cut short: the reader yields the complete packets before the cut
//! and then one clear truncation error naming where the cut record starts (or a clean
//! end when the cut falls on a record boundary), and never panics or hangs.
//!
//! Re-reading a whole prefix for every byte offset is quadratic, so a cut inside a record
//! is read as the file's state blocks (pcap file header; pcapng section and interface
//! blocks) followed by that record up to the cut: the reader is in the same state at the
//! record as it would be after the real prefix. Small files are cut at every byte offset;
//! larger ones at a dense set of offsets in every record (header fields, body, last
//! byte) of up to 4,000 records spread over the file. Eight real prefixes per file check
//! the packet counts before the cut.

use std::io::{Cursor, Read};

use flowscope::pcap::{PcapError, PcapReader, ReaderStats};

use crate::common::{index, shared};

/// One record (pcap) or block (pcapng) of a file.
#[derive(Debug)]
struct Block {
    start: usize,
    end: usize,
    /// The pcap file header, or a pcapng section header or interface description: the
    /// reader's state at later records depends on it.
    state: bool,
}

fn u32_at(b: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if big_endian { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) })
}

/// The records or blocks of a capture, walked independently of the reader. Stops at the
/// first one that runs past the end of the file.
fn blocks(file: &[u8]) -> Vec<Block> {
    let mut out = Vec::new();
    let magic = u32_at(file, 0, true).unwrap_or(0);
    if magic == 0x0a0d_0d0a {
        let mut at = 0;
        let mut big_endian = false;
        while at + 12 <= file.len() {
            let ty = u32_at(file, at, big_endian).unwrap_or(0);
            if ty == 0x0a0d_0d0a || u32_at(file, at, !big_endian) == Some(0x0a0d_0d0a) {
                big_endian = u32_at(file, at + 8, true) == Some(0x1a2b_3c4d);
            }
            let ty = u32_at(file, at, big_endian).unwrap_or(0);
            let len = u32_at(file, at + 4, big_endian).unwrap_or(0) as usize;
            if len < 12 || at + len > file.len() {
                break;
            }
            out.push(Block { start: at, end: at + len, state: ty == 0x0a0d_0d0a || ty == 1 });
            at += len;
        }
        return out;
    }
    let (big_endian, rec_header) = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => (true, 16),
        0xd4c3_b2a1 | 0x4d3c_b2a1 => (false, 16),
        0x34cd_b2a1 => (false, 24),
        _ => return out,
    };
    if file.len() < 24 {
        return out;
    }
    out.push(Block { start: 0, end: 24, state: true });
    let mut at = 24;
    while let Some(caplen) = u32_at(file, at + 8, big_endian) {
        let end = at + rec_header + caplen as usize;
        if end > file.len() {
            break;
        }
        out.push(Block { start: at, end, state: false });
        at = end;
    }
    out
}

/// Read everything; the packet count and the error, if any.
fn read(bytes: &[u8]) -> (usize, Option<PcapError>) {
    let mut reader = match PcapReader::new(Cursor::new(bytes)) {
        Ok(r) => r,
        Err(e) => return (0, Some(e)),
    };
    let mut n = 0;
    loop {
        match reader.next_packet() {
            Ok(Some(_)) => n += 1,
            Ok(None) => return (n, None),
            Err(e) => return (n, Some(e)),
        }
    }
}

/// Offsets inside `[start, end)` to cut at.
fn cuts(start: usize, end: usize, every: bool) -> Vec<usize> {
    if every {
        return (start..end).collect();
    }
    let mut c: Vec<usize> = [0, 1, 4, 7, 8, 12, 15, 16, 20, 23, 24, 27, 28, 31, 32]
        .iter()
        .map(|d| start + d)
        .chain([(start + end) / 2, end - 1])
        .filter(|&c| c < end)
        .collect();
    c.dedup();
    c
}

const EVERY_OFFSET_UP_TO: usize = 64 << 10;
const MAX_RECORDS: usize = 4_000;

#[test]
fn every_capture_cut_short_yields_its_prefix_and_one_clear_error() {
    let dir = shared().join("pcaps");
    let (mut files, mut offsets) = (0usize, 0usize);
    for row in index() {
        let path = dir.join(&row.file);
        let file = std::fs::read(&path).unwrap();
        let (full_packets, full_error) = read(&file);
        let blocks = blocks(&file);
        if blocks.is_empty() {
            continue; // not a capture the reader opens (its own tests cover the errors)
        }
        // The walk agrees with the reader about where records end.
        let readable = match &full_error {
            Some(e) => e.offset().unwrap_or(0) as usize,
            None => file.len(),
        };
        let blocks: Vec<Block> = blocks.into_iter().filter(|b| b.end <= readable).collect();
        files += 1;
        let every = file.len() <= EVERY_OFFSET_UP_TO;
        let stride = blocks.len().div_ceil(MAX_RECORDS).max(1);
        let mut prelude: Vec<u8> = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            let sampled = every || i % stride == 0 || b.state;
            if sampled {
                for cut in cuts(b.start, b.end, every) {
                    let mut input = prelude.clone();
                    input.extend_from_slice(&file[b.start..cut]);
                    let (n, err) = read(&input);
                    offsets += 1;
                    let at = format!("{} cut at {cut} (record at {})", row.file, b.start);
                    if i == 0 {
                        // Inside the file header or first section header.
                        assert!(err.is_some(), "{at}: no error");
                        assert_eq!(n, 0, "{at}");
                        continue;
                    }
                    assert_eq!(n, 0, "{at}: a packet from an incomplete record");
                    if cut == b.start {
                        assert!(err.is_none(), "{at}: a record boundary is a clean end: {err:?}");
                    } else {
                        let e = err.unwrap_or_else(|| panic!("{at}: no error"));
                        assert!(e.is_truncation(), "{at}: {e}");
                        assert_eq!(e.offset(), Some(prelude.len() as u64), "{at}: {e}");
                    }
                }
            }
            if b.state {
                prelude.extend_from_slice(&file[b.start..b.end]);
            }
        }
        // Real prefixes: the packets of every complete record before the cut.
        let n_blocks = blocks.len();
        for k in 0..8 {
            if n_blocks < 2 {
                break;
            }
            let b = &blocks[1 + (n_blocks - 1) * k / 8];
            let cut = (b.start + b.end) / 2;
            let (n, err) = read(&file[..cut]);
            offsets += 1;
            let complete = read(&file[..b.start]).0;
            assert!(n <= full_packets);
            assert_eq!(n, complete, "{}: real prefix cut at {cut}", row.file);
            let e = err.unwrap_or_else(|| panic!("{}: cut at {cut}: no error", row.file));
            assert!(e.is_truncation(), "{}: cut at {cut}: {e}", row.file);
            assert_eq!(e.offset(), Some(b.start as u64), "{}: cut at {cut}: {e}", row.file);
        }
    }
    assert!(files >= 80, "only {files} captures swept");
    eprintln!("truncation sweep: {files} captures, {offsets} cut offsets");
}

/// A reader that hands out at most `chunk` bytes per call, so the reader's buffer often
/// ends inside a record.
struct Trickle<'a> {
    bytes: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(out.len()).min(self.bytes.len());
        out[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// Everything a reader yields: each packet's fields and bytes, the error it ends with,
/// and its counters.
#[derive(Debug, PartialEq)]
struct Reading {
    packets: Vec<(u64, u32, Vec<u8>, u32, u32, u64)>,
    error: Option<String>,
    stats: Option<ReaderStats>,
}

/// Read `bytes` through `next_batch(max)` (or `next_packet` for `max == 0`).
fn reading(bytes: &[u8], chunk: usize, max: usize) -> Reading {
    let mut out = Reading { packets: Vec::new(), error: None, stats: None };
    let mut reader = match PcapReader::new(Trickle { bytes, chunk }) {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let row = |p: &flowscope::pcap::PcapPacket<'_>| {
        (p.ts.as_nanos(), p.link.0, p.data.to_vec(), p.orig_len, p.interface, p.offset)
    };
    loop {
        let step = if max == 0 {
            reader.next_packet().map(|p| p.map(|p| out.packets.push(row(&p))).is_some())
        } else {
            reader.next_batch(max).map(|batch| {
                assert!(batch.len() <= max);
                out.packets.extend(batch.iter().map(|p| row(&p)));
                !batch.is_empty()
            })
        };
        match step {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        }
    }
    out.stats = Some(reader.stats());
    out
}

#[test]
fn batches_read_exactly_what_single_records_read() {
    // Whole files and files cut mid-record, through the reader's own large reads and
    // through 1,000-byte reads (batches then end wherever the buffer does).
    let dir = shared().join("pcaps");
    let (mut files, mut packets) = (0usize, 0usize);
    for row in index() {
        let file = std::fs::read(dir.join(&row.file)).unwrap();
        for input in [&file[..], &file[..file.len() * 2 / 3]] {
            for chunk in [usize::MAX, 1_000] {
                let single = reading(input, chunk, 0);
                for max in [1, 7, 64] {
                    let batched = reading(input, chunk, max);
                    assert!(
                        batched == single,
                        "{} ({} bytes, reads of {chunk}, batches of {max}): {} vs {} packets, {:?} vs {:?}",
                        row.file,
                        input.len(),
                        batched.packets.len(),
                        single.packets.len(),
                        batched.error,
                        single.error
                    );
                }
                packets += single.packets.len();
            }
        }
        files += 1;
    }
    assert!(files >= 80, "only {files} captures");
    eprintln!("batched reading: {files} captures, {packets} packets compared");
}
