//! The reader and the extractor over every capture in `../shared/pcaps`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use flowscope::event::FlowEvent;
use flowscope::extract::{FiveTuple, FiveTupleKey, FlowExtractor};
use flowscope::packet::PacketView;
use flowscope::packet::Transport;
use flowscope::pcap::PcapError;
use flowscope::tracker::FlowTrackerConfig;

use crate::common::{endpoint, index, jsonl, read_capture, shared};

/// Every capture: the packet count equals capinfos' (`index.tsv`), malformed files end in
/// the error INDEX.md describes after the packets before it.
#[test]
fn packet_counts_match_capinfos() {
    let rows = index();
    assert_eq!(rows.len(), 85);
    let mut failures = Vec::new();
    for row in &rows {
        let cap = read_capture(&shared().join("pcaps").join(&row.file));
        let read = cap.packets.len() as u64 + cap.stats.skipped_link_type;
        let name = row.file.rsplit('/').next().unwrap();
        // What INDEX.md says about the malformed files.
        let expected_error = match name {
            "suricata-verify__http-mime-truncated.pcap" => {
                matches!(cap.error, Some(PcapError::TruncatedRecord { offset, .. }) if offset == std::fs::metadata(shared().join("pcaps").join(&row.file)).unwrap().len() - 1)
            }
            "suricata-verify__bug-1450-04.pcap" => matches!(
                cap.error,
                Some(PcapError::RecordTooLarge { offset: 5035, caplen: 4_325_376, limit: 262_144 })
            ),
            "libpcap__shb-option-too-long.pcapng" => {
                matches!(cap.error, Some(PcapError::Malformed { .. }))
            }
            "libpcap__pcap-invalid-version-1.pcap" => {
                matches!(cap.error, Some(PcapError::UnsupportedVersion { major: 1, .. }))
            }
            _ => cap.error.is_none(),
        };
        if !expected_error {
            failures.push(format!("{}: unexpected end {:?}", row.file, cap.error));
        }
        match row.packets {
            Some(n) if n != read => {
                failures.push(format!("{}: read {read}, capinfos {n}", row.file))
            }
            None if read != 0 => failures.push(format!("{}: unreadable but read {read}", row.file)),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every link type in the corpus is read, and no record is skipped for its link type.
#[test]
fn every_link_type_is_read() {
    let mut seen = BTreeSet::new();
    let mut skipped = 0;
    for row in index() {
        let cap = read_capture(&shared().join("pcaps").join(&row.file));
        skipped += cap.stats.skipped_link_type;
        seen.extend(cap.packets.iter().map(|p| p.link.0));
    }
    assert_eq!(skipped, 0);
    let want: BTreeSet<u32> = [0, 1, 101, 113, 228, 229, 239, 276].into_iter().collect();
    assert_eq!(seen, want);
}

/// Captures where tshark finds conversations by dissecting more than flow tracking
/// should, with how many: the 787-capture mix holds sFlow datagrams whose sampled
/// packet headers tshark lists as conversations, IPv4 headers whose total length is
/// corrupt (which we drop as malformed, as Zeek does), and TCP/UDP tshark finds by
/// heuristics inside other payloads.
const TSHARK_DISSECTS_MORE: &[(&str, usize)] = &[("merged__permissive-mix-787-captures", 12)];

/// Captures where tshark's key for a tunnel conversation mixes the layers (see below).
pub(crate) const TSHARK_MIXES_LAYERS: &[&str] = &[
    "arkime__gtp-u",
    "zeek__geneve",
    "zeek__6in4",
    "zeek__erspan",
    "merged__permissive-mix-787-captures",
];

/// Every TCP/UDP conversation tshark lists is found as a flow key, tunnelled ones
/// included (the tracker follows tunnels, as tshark keys them by the inner header).
#[test]
fn tshark_conversations_are_found_as_keys() {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    let mut dissected: BTreeMap<String, usize> = BTreeMap::new();
    for row in index() {
        let name = row.file.rsplit('/').next().unwrap().rsplit_once('.').unwrap().0.to_string();
        let convs = jsonl(&shared().join("pcaps/ref/conversations").join(format!("{name}.jsonl")));
        if convs.is_empty() {
            continue;
        }
        let cap = read_capture(&shared().join("pcaps").join(&row.file));
        let keys: HashSet<FiveTupleKey> = cap
            .packets
            .iter()
            .filter_map(|p| {
                let view = PacketView::new(p.ts, p.link, &p.data).with_orig_len(p.orig_len);
                FiveTuple::new().extract(&view).ok().map(|e| (e, &p.data))
            })
            .flat_map(|(e, frame)| {
                // tshark also lists the conversation quoted inside an ICMP error; the
                // extractor exposes that tuple for attribution.
                let inner = match e.headers.transport {
                    Transport::Icmp(i) => i.inner(frame).map(|t| {
                        FiveTupleKey::new(t.src, t.src_port, t.dst, t.dst_port, t.proto, 0).0
                    }),
                    _ => None,
                };
                std::iter::once(e.key).chain(inner)
            })
            .collect();
        // Flows inside tunnels.
        let (events, _) = crate::tracker::track(&cap.packets, FlowTrackerConfig::default());
        let keys: HashSet<FiveTupleKey> = keys
            .into_iter()
            .chain(events.iter().filter_map(|e| match e {
                FlowEvent::Started { key, .. } => Some(*key),
                _ => None,
            }))
            .collect();
        for c in &convs {
            let proto = if c["proto"] == "tcp" { 6 } else { 17 };
            let (a, pa) = endpoint(c["a"].as_str().unwrap());
            let (b, pb) = endpoint(c["b"].as_str().unwrap());
            let (key, _) = FiveTupleKey::new(a, pa, b, pb, proto, 0);
            checked += 1;
            // tshark keys the outer UDP of a tunnel by the inner packet's addresses and the
            // outer ports (and a 6in4 UDP datagram by the outer addresses and the inner
            // ports): a flow with the same protocol and ports stands for it.
            let mixed = || {
                keys.iter().any(|k| {
                    k.proto() == proto && {
                        let (p1, p2) = (
                            k.src(flowscope::extract::Orientation::Forward).1,
                            k.dst(flowscope::extract::Orientation::Forward).1,
                        );
                        (p1, p2) == (pa, pb) || (p1, p2) == (pb, pa)
                    }
                })
            };
            let found =
                keys.contains(&key) || (TSHARK_MIXES_LAYERS.contains(&name.as_str()) && mixed());
            if !found {
                if TSHARK_DISSECTS_MORE.iter().any(|(n, _)| *n == name) {
                    *dissected.entry(name.clone()).or_default() += 1;
                } else {
                    failures
                        .push(format!("{name}: {} {a}:{pa} <-> {b}:{pb} not found", c["proto"]));
                }
            }
        }
    }
    eprintln!("conversations checked: {checked}; found only by tshark's dissectors: {dissected:?}");
    for (name, most) in TSHARK_DISSECTS_MORE {
        let n = dissected.get(*name).copied().unwrap_or(0);
        assert!(n <= *most, "{name}: {n} conversations not found (at most {most} expected)");
    }
    assert!(checked > 8000, "only {checked} conversations checked");
    assert!(failures.is_empty(), "{} missing:\n{}", failures.len(), failures.join("\n"));
}

/// Unmatched packets across the corpus have a reason, and every packet is counted once.
#[test]
fn every_packet_is_keyed_or_has_a_reason() {
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut total = 0usize;
    let mut keyed = 0usize;
    for row in index() {
        let cap = read_capture(&shared().join("pcaps").join(&row.file));
        for p in &cap.packets {
            total += 1;
            let view = PacketView::new(p.ts, p.link, &p.data).with_orig_len(p.orig_len);
            match FiveTuple::new().extract(&view) {
                Ok(_) => keyed += 1,
                Err(u) => *reasons.entry(u.as_str()).or_default() += 1,
            }
        }
    }
    let unmatched: usize = reasons.values().sum();
    eprintln!("packets {total}, keyed {keyed}, unmatched {reasons:?}");
    assert_eq!(keyed + unmatched, total);
    // The corpus is overwhelmingly well-formed IP; the non-IP share is ARP, LLDP, STP
    // and friends, and fragments are the frag/ captures.
    assert!(keyed * 100 / total >= 90, "only {keyed} of {total} keyed");
}
