//! Shared helpers: where the shared data lives, and reading a capture whole.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use flowscope::packet::LinkType;
use flowscope::pcap::{PcapError, PcapReader, ReaderStats};
use flowscope::Timestamp;

/// `../shared` beside the checkout (override with `FLOWSCOPE_SHARED`). The tests need it:
/// a missing directory is a failure, not a skip.
pub(crate) fn shared() -> PathBuf {
    if let Ok(p) = std::env::var("FLOWSCOPE_SHARED") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    assert!(p.join("pcaps/index.tsv").exists(), "shared data not found at {}", p.display());
    p
}

/// One row of `pcaps/index.tsv`.
#[derive(Debug, Clone)]
pub(crate) struct IndexRow {
    pub(crate) file: String,
    /// Packets capinfos reads; `None` for unreadable files.
    pub(crate) packets: Option<u64>,
}

pub(crate) fn index() -> Vec<IndexRow> {
    let text = std::fs::read_to_string(shared().join("pcaps/index.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (file, packets) = (col("file"), col("packets"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            IndexRow { file: f[file].to_string(), packets: f[packets].trim().parse().ok() }
        })
        .collect()
}

/// An owned packet record.
#[derive(Debug, Clone)]
pub(crate) struct Rec {
    pub(crate) ts: Timestamp,
    pub(crate) link: LinkType,
    pub(crate) data: Vec<u8>,
    pub(crate) orig_len: u32,
}

/// Everything read from one capture.
#[derive(Debug)]
pub(crate) struct Capture {
    pub(crate) packets: Vec<Rec>,
    pub(crate) stats: ReaderStats,
    pub(crate) error: Option<PcapError>,
}

pub(crate) fn read_capture(path: &Path) -> Capture {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut packets = Vec::new();
    let mut reader = match PcapReader::new(BufReader::new(file)) {
        Ok(r) => r,
        Err(e) => return Capture { packets, stats: ReaderStats::default(), error: Some(e) },
    };
    let error = loop {
        match reader.next_packet() {
            Ok(Some(p)) => packets.push(Rec {
                ts: p.ts,
                link: p.link,
                data: p.data.to_vec(),
                orig_len: p.orig_len,
            }),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    Capture { packets, stats: reader.stats(), error }
}

/// Lines of a JSON-lines file, parsed.
pub(crate) fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Parse tshark's `addr:port` / `[v6addr]:port` endpoint.
pub(crate) fn endpoint(s: &str) -> (std::net::IpAddr, u16) {
    let (addr, port) = s.rsplit_once(':').unwrap();
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    (addr.parse().unwrap(), port.parse().unwrap())
}

#[allow(dead_code)]
pub(crate) fn count_by<K: Ord, I: IntoIterator<Item = K>>(items: I) -> BTreeMap<K, usize> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}
