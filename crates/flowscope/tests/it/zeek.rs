//! Zeek conformance: our flow records against the conn.log Zeek's own test suite expects
//! (`../shared/zeek-conformance`, 66 cases).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::event::FlowEvent;
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::packet::PacketView;
use flowscope::tracker::FlowTrackerConfig;

use crate::common::{read_capture, shared};

/// One conn.log row, with the fields we compare.
#[derive(Debug, Clone)]
pub(crate) struct ZeekConn {
    pub(crate) proto: String,
    pub(crate) orig: (IpAddr, u16),
    pub(crate) resp: (IpAddr, u16),
    pub(crate) fields: HashMap<String, String>,
}

impl ZeekConn {
    fn get(&self, f: &str) -> Option<&str> {
        self.fields.get(f).map(String::as_str)
    }

    pub(crate) fn in_tunnel(&self) -> bool {
        !matches!(
            self.get("tunnel_parents"),
            None | Some("-") | Some("(empty)") | Some("[]") | Some("")
        )
    }
}

/// Parse a conn.log baseline (Zeek TSV or JSON lines; `id.orig_h` or `src_ip` names).
/// Rows without endpoints (some tests log only a few columns) are left out.
pub(crate) fn parse_conn_log(path: &Path) -> Vec<ZeekConn> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut fields: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#fields\t") {
            fields = rest.split('\t').map(str::to_string).collect();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let row: HashMap<String, String> = if line.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                })
                .collect()
        } else {
            fields.iter().cloned().zip(line.split('\t').map(str::to_string)).collect()
        };
        let pick = |a: &str, b: &str| row.get(a).or_else(|| row.get(b)).cloned();
        let (Some(oh), Some(op), Some(rh), Some(rp), Some(proto)) = (
            pick("id.orig_h", "src_ip"),
            pick("id.orig_p", "src_port"),
            pick("id.resp_h", "dst_ip"),
            pick("id.resp_p", "dst_port"),
            row.get("proto").cloned(),
        ) else {
            continue;
        };
        out.push(ZeekConn {
            proto,
            orig: (oh.parse().unwrap(), op.parse().unwrap()),
            resp: (rh.parse().unwrap(), rp.parse().unwrap()),
            fields: row,
        });
    }
    out
}

/// Zeek's defaults where they differ from ours: an unanswered attempt is dropped 5 s
/// after its SYN (`tcp_attempt_delay`), and ICMP times out after a minute.
pub(crate) fn zeek_like_config() -> FlowTrackerConfig {
    let d = FlowTrackerConfig::default();
    FlowTrackerConfig::default().with_attempt_idle(Duration::from_secs(5)).with_idle(
        d.tcp_idle,
        d.udp_idle,
        Duration::from_secs(60),
    )
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        1 | 58 => "icmp",
        _ => "unknown_transport",
    }
}

/// Our records for one trace, by (proto, orig, resp), in the order flows ended.
/// Zeek's match key for a connection: protocol name, IP protocol number, endpoints.
/// Zeek logs protocols it has no analyzer for (SCTP among them) as `unknown_transport`
/// with ports 0; our keys keep SCTP's ports (Community ID needs them), so they are
/// zeroed here for the comparison.
type ConnKey = (String, u8, (IpAddr, u16), (IpAddr, u16));

fn conn_key(proto: u8, orig: (IpAddr, u16), resp: (IpAddr, u16)) -> ConnKey {
    let name = proto_name(proto);
    if name == "unknown_transport" {
        (name.to_string(), proto, (orig.0, 0), (resp.0, 0))
    } else {
        (name.to_string(), proto, orig, resp)
    }
}

pub(crate) fn our_conns(
    trace: &Path,
    verify_checksums: bool,
) -> HashMap<ConnKey, Vec<BTreeMap<&'static str, String>>> {
    let cap = read_capture(trace);
    // The full driver (tracking and reassembly), so missed bytes and gap letters are real.
    let config = zeek_like_config().with_verify_checksums(verify_checksums);
    let mut driver: FlowDriver<FiveTuple> = FlowDriver::new(FiveTuple::new(), config);
    let mut ended = Vec::new();
    let mut keep = |e: DriverEvent<'_, FiveTupleKey>| {
        if let DriverEvent::Flow(FlowEvent::Ended {
            key,
            initiator,
            stats,
            conn_state,
            history,
            ..
        }) = e
        {
            ended.push((key, initiator, stats, conn_state, history));
        }
    };
    for p in &cap.packets {
        let view = PacketView::new(p.ts, p.link, &p.data).with_orig_len(p.orig_len);
        driver.handle_packet(&view, &mut keep);
    }
    driver.finish(&mut keep);
    let mut out: HashMap<_, Vec<_>> = HashMap::new();
    for (key, initiator, stats, conn_state, history) in ended {
        let mut f = BTreeMap::new();
        f.insert("conn_state", conn_state.as_str().to_string());
        f.insert("orig_pkts", stats.initiator.packets.to_string());
        f.insert("resp_pkts", stats.responder.packets.to_string());
        f.insert("orig_ip_bytes", stats.initiator.ip_bytes.to_string());
        f.insert("resp_ip_bytes", stats.responder.ip_bytes.to_string());
        // Zeek leaves the byte counts unset for connections that saw one packet.
        let single = stats.packets() <= 1;
        let bytes = |b: u64| if single { "-".to_string() } else { b.to_string() };
        f.insert("orig_bytes", bytes(stats.initiator.payload_bytes));
        f.insert("resp_bytes", bytes(stats.responder.payload_bytes));
        f.insert(
            "missed_bytes",
            (stats.initiator.missed_bytes + stats.responder.missed_bytes).to_string(),
        );
        f.insert(
            "history",
            if history.is_empty() { "-".into() } else { history.as_str().to_string() },
        );
        let k = conn_key(key.proto(), key.src(initiator), key.dst(initiator));
        out.entry(k).or_default().push(f);
    }
    out
}

fn has_ip_fragments(trace: &Path) -> bool {
    read_capture(trace).packets.iter().any(|p| {
        let view = PacketView::new(p.ts, p.link, &p.data).with_orig_len(p.orig_len);
        flowscope::packet::decode(&view).is_ok_and(|h| h.ip.is_some_and(|ip| ip.fragment.is_some()))
    })
}

const COMPARED: [&str; 9] = [
    "conn_state",
    "orig_pkts",
    "resp_pkts",
    "orig_ip_bytes",
    "resp_ip_bytes",
    "orig_bytes",
    "resp_bytes",
    "missed_bytes",
    "history",
];
/// Reported beside the threshold (none at present).
const REPORTED: [&str; 0] = [];

/// conn_state, packets, IP bytes, payload bytes per side, missed bytes and history equal Zeek's for at least 97% of the
/// connections; prints the rate per field and every mismatch. Checksums are verified as
/// Zeek verified them: in the cases its test did not run with `-C` (`cases.tsv`), where
/// it dropped packets with a bad IPv4 header checksum (`field-name-map2`) and left
/// bad-checksum UDP out of the counts with a `C` in the history
/// (`vxlan-unknown-internal-packet`).
///
/// The known mismatches, none of them flow tracking proper:
/// - analyzers changing the record: the NTP and Teredo analyzers flip roles by message
///   content (`misordered-ntp`, `teredo_bubble_with_payload`), the gridftp script logs a
///   data connection early (`gridftp`), and a capture filter installed mid-run drops
///   packets (`core.pcap.dynamic-filter`);
/// - `field-extension` ran Zeek in bare mode, where no server ports are known, so Zeek
///   did not flip a SYN-ACK-first connection; we always do (the SYN-ACK sender is the
///   responder);
/// - `ftp-max-command-length` and `gtp.different_dl_and_ul`: Zeek's FTP and HTTP
///   analyzers add an `X` (analyzer violation) to the history, which a flow tracker
///   without protocol analyzers cannot know.
///
/// Tunnelled connections (inner and outer) and traces with IP fragments are compared
/// like the rest; at least 16 and 5 of them.
#[test]
fn conn_records_match_zeek() {
    let root = shared().join("zeek-conformance");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    cases.sort();
    // `cases.tsv`: case, trace, and whether Zeek ran with `-C` (ignore checksums).
    let table = std::fs::read_to_string(root.join("cases.tsv")).unwrap();
    let ignores_checksums: std::collections::HashSet<&str> = table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 3 && f[2] == "True").then_some(f[0])
        })
        .collect();
    assert_eq!(ignores_checksums.len(), 15, "cases run with -C");
    let (mut rows, mut fragment_rows, mut full_match) = (0usize, 0usize, 0usize);
    let mut inner_rows = 0usize;
    let mut field_match: BTreeMap<&str, usize> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut extra_misses = Vec::new();
    for case in &cases {
        let trace = ["trace.pcap", "trace.pcapng"]
            .iter()
            .map(|t| case.join(t))
            .find(|p| p.exists())
            .unwrap();
        let zeek = parse_conn_log(&case.join("conn.log"));
        if zeek.is_empty() {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        // Zeek verified checksums unless its test ran it with `-C`.
        let mut ours = our_conns(&trace, !ignores_checksums.contains(name.as_str()));
        // Rows that need the tunnels and fragments work: inner connections (Zeek names
        // their tunnel), every connection of `core.skip_analyzer` (GRE-inner, with the
        // tunnel log switched off in that test), and traces carrying IP fragments (Zeek
        // counts a reassembled datagram once).
        let fragmented = has_ip_fragments(&trace);
        for z in zeek {
            fragment_rows += usize::from(fragmented);
            rows += 1;
            inner_rows += usize::from(z.in_tunnel());
            let ip_proto =
                z.get("ip_proto").and_then(|p| p.parse().ok()).unwrap_or(match z.proto.as_str() {
                    "tcp" => 6,
                    "udp" => 17,
                    _ if z.orig.0.is_ipv6() => 58,
                    _ => 1,
                });
            let key = conn_key(ip_proto, z.orig, z.resp);
            let mine = ours.get_mut(&key).filter(|v| !v.is_empty()).map(|v| v.remove(0));
            let Some(mine) = mine else {
                let flipped =
                    ours.get(&conn_key(ip_proto, z.resp, z.orig)).is_some_and(|v| !v.is_empty());
                misses.push(format!(
                    "{name}: {} {:?} -> {:?}: {}",
                    z.proto,
                    z.orig,
                    z.resp,
                    if flipped { "found with the roles flipped" } else { "no such flow" }
                ));
                continue;
            };
            for f in REPORTED {
                if z.get(f) == Some(mine[f].as_str()) {
                    *field_match.entry(f).or_default() += 1;
                } else {
                    extra_misses.push(format!(
                        "{name}: {} {:?} -> {:?}: {f} zeek {} ours {}",
                        z.proto,
                        z.orig,
                        z.resp,
                        z.get(f).unwrap_or("?"),
                        mine[f]
                    ));
                }
            }
            let mut all = true;
            let mut diffs = Vec::new();
            for f in COMPARED {
                if z.get(f) == Some(mine[f].as_str()) {
                    *field_match.entry(f).or_default() += 1;
                } else {
                    all = false;
                    diffs.push(format!("{f} zeek {} ours {}", z.get(f).unwrap_or("?"), mine[f]));
                }
            }
            if all {
                full_match += 1;
            } else {
                misses.push(format!(
                    "{name}: {} {:?} -> {:?} (history zeek {} ours {}): {}",
                    z.proto,
                    z.orig,
                    z.resp,
                    z.get("history").unwrap_or("?"),
                    mine["history"],
                    diffs.join(", ")
                ));
            }
        }
    }
    let rate = full_match as f64 / rows as f64;
    eprintln!("zeek conformance: {full_match}/{rows} connections match on {COMPARED:?} ({:.1}%), {inner_rows} of them inside tunnels, {fragment_rows} in traces with IP fragments", rate * 100.0);
    for (f, n) in &field_match {
        eprintln!("  {f}: {n}/{rows} ({:.1}%)", *n as f64 * 100.0 / rows as f64);
    }
    for m in &misses {
        eprintln!("  mismatch: {m}");
    }
    for m in &extra_misses {
        eprintln!("  reported-only mismatch: {m}");
    }
    assert!(rows >= 240, "{rows}");
    assert!(
        inner_rows >= 16 && fragment_rows >= 5,
        "{inner_rows} tunnelled, {fragment_rows} fragmented"
    );
    assert!(rate >= 0.97, "match rate {:.1}% below 97%", rate * 100.0);
}
