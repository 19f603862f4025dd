//! Reassembled streams against tcpflow's, over every capture in `../shared/pcaps`.
//!
//! `tests/data/tcpflow/digests.tsv` holds the length, SHA-1 and last 16 bytes of every
//! stream file tcpflow 1.6.1 (Debian 12) wrote for these captures (`make-digests.sh`
//! rebuilds it).
//! tcpflow writes each segment at its offset in the file, so a hole is zero bytes and a
//! missing tail is absent; the test rebuilds our streams the same way (data at its
//! offset, gaps as zeros, trailing gaps dropped) and compares digests.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;

use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::event::{FlowEvent, FlowSide};
use flowscope::extract::{FiveTuple, FiveTupleKey, FlowExtractor};
use flowscope::packet::PacketView;
use flowscope::tracker::FlowTrackerConfig;
use sha1::{Digest, Sha1};

use crate::common::{read_capture, shared};

/// tcpflow's name for one direction: `src.port-dst.port`, IPv4 octets and ports
/// zero-padded, then `--VLAN` when the packets were tagged.
fn tcpflow_name(src: (IpAddr, u16), dst: (IpAddr, u16), vlan: Option<u16>) -> String {
    let ep = |(a, p): (IpAddr, u16)| match a {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{:03}.{:03}.{:03}.{:03}.{:05}", o[0], o[1], o[2], o[3], p)
        }
        IpAddr::V6(v6) => format!("{v6}.{p:05}"),
    };
    let mut s = format!("{}-{}", ep(src), ep(dst));
    if let Some(v) = vlan {
        s.push_str(&format!("--{v}"));
    }
    s
}

/// Streams by tcpflow direction name: (order, SHA-1, length, bytes or tail).
type Streams = BTreeMap<String, Vec<(usize, String, u64, Vec<u8>)>>;

/// One side's stream rebuilt as tcpflow would write it.
#[derive(Default)]
struct Rebuilt {
    bytes: Vec<u8>,
}

impl Rebuilt {
    fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset as usize + data.len();
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[offset as usize..end].copy_from_slice(data);
    }
}

/// Our streams for a capture, by tcpflow direction name, in order of flow start.
fn our_streams(path: &Path) -> Streams {
    let cap = read_capture(path);
    let mut driver: FlowDriver<FiveTuple> =
        FlowDriver::new(FiveTuple::new(), FlowTrackerConfig::default());
    // Flows are numbered as they start; streams are filed under (flow number, side).
    let mut flow_no: HashMap<FiveTupleKey, usize> = HashMap::new();
    let mut started = 0usize;
    let mut names: HashMap<(usize, FlowSide), String> = HashMap::new();
    let mut streams: HashMap<(usize, FlowSide), Rebuilt> = HashMap::new();
    let mut vlan_of: HashMap<FiveTupleKey, Option<u16>> = HashMap::new();
    let mut initiator_of: HashMap<usize, (FiveTupleKey, flowscope::extract::Orientation)> =
        HashMap::new();
    for p in &cap.packets {
        let view = PacketView::new(p.ts, p.link, &p.data).with_orig_len(p.orig_len);
        if let Ok(ex) = FiveTuple::new().extract(&view) {
            // tcpflow names tagged flows by the whole 802.1Q TCI (priority bits too).
            let tci = (ex.headers.vlan.depth() > 0)
                .then(|| p.data.get(14..16).map(|b| u16::from_be_bytes([b[0], b[1]])))
                .flatten();
            vlan_of.entry(ex.key).or_insert(tci);
        }
        driver.handle_packet(&view, &mut |e: DriverEvent<'_, FiveTupleKey>| match e {
            DriverEvent::Flow(FlowEvent::Started { key, initiator, .. }) => {
                flow_no.insert(key, started);
                initiator_of.insert(started, (key, initiator));
                started += 1;
            }
            DriverEvent::Data { key, side, offset, bytes } => {
                let n = flow_no[&key];
                streams.entry((n, side)).or_default().write(offset, bytes);
                names.entry((n, side)).or_insert_with(|| {
                    let (k, init) = initiator_of[&n];
                    let o = if side == FlowSide::Initiator { init } else { init.flip() };
                    tcpflow_name(k.src(o), k.dst(o), vlan_of.get(&k).copied().flatten())
                });
            }
            _ => {}
        });
    }
    let mut keys: HashMap<usize, (FiveTupleKey, flowscope::extract::Orientation)> =
        initiator_of.clone();
    driver.finish(&mut |e: DriverEvent<'_, FiveTupleKey>| {
        if let DriverEvent::Data { key, side, offset, bytes } = e {
            let n = flow_no[&key];
            streams.entry((n, side)).or_default().write(offset, bytes);
            names.entry((n, side)).or_insert_with(|| {
                let (k, init) = keys.remove(&n).unwrap_or(initiator_of[&n]);
                let o = if side == FlowSide::Initiator { init } else { init.flip() };
                tcpflow_name(k.src(o), k.dst(o), vlan_of.get(&k).copied().flatten())
            });
        }
    });
    let mut out: Streams = BTreeMap::new();
    for ((n, side), s) in streams {
        let name = names[&(n, side)].clone();
        out.entry(name).or_default().push((n, sha1_hex(&s.bytes), s.bytes.len() as u64, s.bytes));
    }
    for v in out.values_mut() {
        v.sort_by_key(|x| x.0);
    }
    out
}

fn sha1_hex(b: &[u8]) -> String {
    Sha1::digest(b).iter().map(|b| format!("{b:02x}")).collect()
}

/// tcpflow's streams for a capture, by direction name (its `cN` suffixes stripped), in
/// tcpflow's order.
/// A digests.tsv row: file name, length, SHA-1, last 16 bytes.
type Row = (String, u64, String, Vec<u8>);

fn tcpflow_streams(rows: &[Row]) -> Streams {
    let mut out: Streams = BTreeMap::new();
    for (file, bytes, sha, tail) in rows.iter().filter(|r| r.1 > 0) {
        // `...c3` marks tcpflow's fourth connection on the same direction.
        let (base, n) = match file.rfind('c') {
            Some(i) if file[i + 1..].chars().all(|c| c.is_ascii_digit()) && i + 1 < file.len() => {
                (file[..i].to_string(), file[i + 1..].parse::<usize>().unwrap())
            }
            _ => (file.clone(), 0),
        };
        out.entry(base).or_default().push((n, sha.clone(), *bytes, tail.clone()));
    }
    for v in out.values_mut() {
        v.sort_by_key(|x| x.0);
    }
    out
}

/// Streams that differ from tcpflow's by design, with the reason.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "tcp/suricata-verify__eve-overlap-payload-04-partial-overlap.pcap",
        "001.001.001.001.12345-002.002.002.002.08080--6",
        "overlapping segments with different bytes: first-arrived wins here, tcpflow writes the last",
    ),
    (
        "tcp/zeek__reassembly.pcap",
        "063.193.213.194.02564-128.003.097.175.00080",
        "five frames claim an IPv4 total length beyond the frame; we drop them as Zeek does, tcpflow writes what they hold",
    ),
    (
        "encap/zeek__mixed-vlan-mpls.pcap",
        "010.020.080.001.50343-010.000.000.015.00080--4093",
        "one 5-tuple seen on two VLANs: tcpflow keys by VLAN, the default FiveTuple does not (with_vlan_in_key(true) does)",
    ),
    (
        "encap/zeek__mixed-vlan-mpls.pcap",
        "010.000.000.015.00080-010.020.080.001.50343--4093",
        "as above",
    ),
    (
        "encap/arkime__mpls-basic.pcap",
        "010.034.000.001.00023-010.001.002.001.11001",
        "tcpflow starts a new stream after every RST; packets within our 5 s linger stay in the flow",
    ),
    ("format/zeek__get-to-ssh-server.pcap", "130.074.164.231.00022-136.216.042.040.44338", "as above (RST)"),
    (
        "frag/arkime__socks5-http-302-frag.pcap",
        "010.000.000.001.01637-010.000.000.002.21477",
        "every segment is split into IPv4 fragments: tcpflow does not reassemble them and writes only what the first fragments hold; we reassemble the datagrams (`fragmented_connection_streams_whole`)",
    ),
    (
        "frag/arkime__socks5-http-302-frag.pcap",
        "010.000.000.002.21477-010.000.000.001.01637",
        "as above (IPv4 fragments)",
    ),
    (
        "frag/zeek__fragmented-4.pcap",
        "128.032.046.142.07790-010.000.000.001.00080",
        "the request is cut into overlapping IPv4 fragments (an evasion); tcpflow keeps the first fragment's 4 bytes, we reassemble the datagram, first bytes winning",
    ),
    (
        "large/gopacket__cip.pcap",
        "010.200.001.018.01054-054.175.048.202.00080",
        "retried connections after RSTs: a new SYN after a RST is a new flow here (as in Zeek), one stream in tcpflow",
    ),
];

/// Every stream tcpflow writes equals ours byte for byte (allowing for tcpflow's habit
/// of writing Ethernet padding as data), wherever the two split the traffic into the
/// same connections; the exceptions are listed in `KNOWN` with the reason.
#[test]
fn reassembled_streams_equal_tcpflow() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tcpflow/digests.tsv"),
    )
    .unwrap();
    let mut by_capture: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let tail: Vec<u8> = (0..f[4].len() / 2)
            .map(|i| u8::from_str_radix(&f[4][2 * i..2 * i + 2], 16).unwrap())
            .collect();
        by_capture.entry(f[0].to_string()).or_default().push((
            f[1].to_string(),
            f[2].parse().unwrap(),
            f[3].to_string(),
            tail,
        ));
    }
    let (mut equal, mut padding, mut padding_only, mut differ, mut split) =
        (0usize, 0usize, 0usize, Vec::new(), Vec::new());
    for (capture, rows) in &by_capture {
        let ours = our_streams(&shared().join("pcaps").join(capture));
        let theirs = tcpflow_streams(rows);
        for (name, t) in &theirs {
            let Some(o) = ours.get(name) else {
                // A "stream" that is only the zero padding of short frames (tcpflow takes
                // payload from the captured length): there is no payload to match.
                // (Files under 16 bytes are whole in their tail, so the check is exact.)
                if t.iter().all(|(_, sha, len, tail)| {
                    *len <= 8 && *len as usize == tail.len() && *sha == sha1_hex(tail)
                }) {
                    padding_only += t.len();
                    continue;
                }
                split.push(format!(
                    "{capture}: {name}: {} tcpflow stream(s), none of ours",
                    t.len()
                ));
                continue;
            };
            if o.len() != t.len() {
                split.push(format!(
                    "{capture}: {name}: tcpflow {} stream(s), ours {}",
                    t.len(),
                    o.len()
                ));
                continue;
            }
            for ((_, osha, olen, obytes), (_, tsha, tlen, ttail)) in o.iter().zip(t) {
                if osha == tsha {
                    equal += 1;
                    continue;
                }
                // tcpflow takes a segment's payload from the captured length, so the
                // padding of a short Ethernet frame at the stream's end becomes "data"
                // (at most 8 bytes of it): ours plus tcpflow's last bytes must be
                // exactly tcpflow's file.
                let extra = tlen.saturating_sub(*olen) as usize;
                if (1..=8).contains(&extra) && extra <= ttail.len() {
                    let mut padded = obytes.clone();
                    padded.extend_from_slice(&ttail[ttail.len() - extra..]);
                    if sha1_hex(&padded) == *tsha {
                        padding += 1;
                        continue;
                    }
                }
                differ.push(format!("{capture}: {name}: ours {olen} bytes, tcpflow {tlen}"));
            }
        }
    }
    eprintln!(
        "streams equal to tcpflow's: {equal}; equal but for tcpflow's frame padding: {padding}; tcpflow files of padding only: {padding_only}; different: {}; split differently: {}",
        differ.len(),
        split.len()
    );
    for d in &differ {
        eprintln!("  differs: {d}");
    }
    for s in &split {
        eprintln!("  split: {s}");
    }
    let known = |line: &str| KNOWN.iter().any(|(c, n, _)| line.starts_with(&format!("{c}: {n}:")));
    let unexplained: Vec<&String> = differ.iter().chain(&split).filter(|l| !known(l)).collect();
    assert!(unexplained.is_empty(), "unexplained differences from tcpflow:\n{unexplained:#?}");
    assert!(equal >= 1500, "{equal}");
}

/// A SOCKS5 + HTTP connection whose every segment was cut into IPv4 fragments
/// (fragroute-style) comes out whole: the SOCKS handshake and the HTTP exchange, no
/// missed bytes.
#[test]
fn fragmented_connection_streams_whole() {
    let streams = our_streams(&shared().join("pcaps/frag/arkime__socks5-http-302-frag.pcap"));
    let find = |name: &str| -> Vec<u8> {
        let v = &streams[name];
        assert_eq!(v.len(), 1, "{name}");
        v[0].3.clone()
    };
    let client = find("010.000.000.001.01637-010.000.000.002.21477");
    let server = find("010.000.000.002.21477-010.000.000.001.01637");
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    assert_eq!((client.len(), server.len()), (419, 942));
    assert!(text(&client).contains("GET / HTTP/1.1"), "{}", text(&client));
    assert!(text(&server).contains("HTTP/1.1 302 Found"), "{}", text(&server));
    // No zero-filled holes: a gap would show as a run of zeros in the rebuilt stream.
    assert!(!server.windows(16).any(|w| w.iter().all(|&b| b == 0)));
}
