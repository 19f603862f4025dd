//! Community ID against the specification's own baselines.

use std::collections::BTreeMap;

use flowscope::extract::{community_id_v1, icmp_port_mapping, FiveTuple, FlowExtractor};
use flowscope::packet::{PacketView, Transport};

use crate::common::{read_capture, shared};

type Tuple = (u8, String, String, Option<u16>, Option<u16>);

/// Directed tuples of combined.pcap, with ICMP mapped to ports, and whether one-way.
fn tuples() -> BTreeMap<Tuple, bool> {
    let cap = read_capture(&shared().join("community-id/combined.pcap"));
    assert!(cap.error.is_none());
    assert_eq!(cap.packets.len(), 68);
    let mut out = BTreeMap::new();
    for p in &cap.packets {
        let view = PacketView::new(p.ts, p.link, &p.data).with_orig_len(p.orig_len);
        let Ok(e) = FiveTuple::new().extract(&view) else { continue };
        let ip = e.headers.ip.unwrap();
        let (ports, one_way) = match e.headers.transport {
            Transport::Icmp(i) => {
                let m = icmp_port_mapping(i.v6, i.ty, i.code);
                (Some((m.src_port, m.dst_port)), m.one_way)
            }
            _ => (e.headers.ports(), false),
        };
        let t = (
            ip.proto,
            ip.src().to_string(),
            ip.dst().to_string(),
            ports.map(|p| p.0),
            ports.map(|p| p.1),
        );
        out.insert(t, one_way);
    }
    out
}

fn check(baseline: &str, seed: u16, hex: bool) {
    let text = std::fs::read_to_string(shared().join("community-id").join(baseline)).unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let tuples = tuples();
    assert!(entries.len() >= 20);
    for e in &entries {
        let t: Tuple = (
            e["proto"].as_u64().unwrap() as u8,
            e["saddr"].as_str().unwrap().to_string(),
            e["daddr"].as_str().unwrap().to_string(),
            e["sport"].as_u64().map(|v| v as u16),
            e["dport"].as_u64().map(|v| v as u16),
        );
        let one_way = *tuples
            .get(&t)
            .unwrap_or_else(|| panic!("{baseline}: tuple {t:?} not seen in combined.pcap"));
        let ports = t.3.zip(t.4);
        let id =
            community_id_v1(seed, t.1.parse().unwrap(), t.2.parse().unwrap(), t.0, ports, one_way);
        let got = if hex { id.to_hex() } else { id.to_string() };
        assert_eq!(got, e["communityid"].as_str().unwrap(), "{baseline}: {t:?}");
    }
}

#[test]
fn baseline_default_seed() {
    check("baseline_deflt.json", 0, false);
}

#[test]
fn baseline_seed_1() {
    check("baseline_seed1.json", 1, false);
}

#[test]
fn baseline_no_base64() {
    check("baseline_nob64.json", 0, true);
}

/// The key-level API gives the same ids as the tuple-level one for every packet.
#[test]
fn key_community_id_matches_baseline() {
    let text = std::fs::read_to_string(shared().join("community-id/baseline_deflt.json")).unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let cap = read_capture(&shared().join("community-id/combined.pcap"));
    let mut matched = 0;
    for p in &cap.packets {
        let view = PacketView::new(p.ts, p.link, &p.data).with_orig_len(p.orig_len);
        let Ok(e) = FiveTuple::new().extract(&view) else { continue };
        let ip = e.headers.ip.unwrap();
        let id = e.key.community_id(0, e.orientation).to_string();
        let sport = e.key.src(e.orientation).1;
        let dport = e.key.dst(e.orientation).1;
        let found = entries.iter().find(|x| {
            x["proto"].as_u64() == Some(u64::from(ip.proto))
                && x["saddr"].as_str() == Some(&ip.src().to_string())
                && x["daddr"].as_str() == Some(&ip.dst().to_string())
                && (x["sport"].is_null()
                    || (x["sport"].as_u64() == Some(u64::from(sport))
                        && x["dport"].as_u64() == Some(u64::from(dport))))
        });
        if let Some(x) = found {
            assert_eq!(id, x["communityid"].as_str().unwrap());
            matched += 1;
        }
    }
    assert!(matched >= 40, "matched {matched}");
}
