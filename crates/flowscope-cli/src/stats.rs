//! `flowscope stats`: a human summary of a capture.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::Instant;

use anyhow::Result;

use crate::options::{FileArgs, TrackOpts};
use crate::run::{run, Event, Source};

pub(crate) fn stats(input: &FileArgs, opts: &TrackOpts) -> Result<()> {
    let started = Instant::now();
    let mut by_proto: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_reason: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut anomalies: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut talkers: HashMap<IpAddr, u64> = HashMap::new();
    let (mut flows, mut flow_bytes, mut flow_packets, mut missed) = (0u64, 0u64, 0u64, 0u64);
    let mut inconsistent = 0u64;
    let summary = run(Source::Files(input), opts, |e| {
        match e {
            Event::Ended(r, _) => {
                flows += 1;
                *by_proto.entry(r.proto).or_default() += 1;
                *by_reason.entry(r.end_reason.map_or("-", |e| e.as_str())).or_default() += 1;
                *by_state.entry(r.conn_state.as_str()).or_default() += 1;
                let (i, p) = (&r.stats.initiator, &r.stats.responder);
                flow_bytes += i.l2_bytes + p.l2_bytes;
                flow_packets += i.packets + p.packets;
                missed += i.missed_bytes + p.missed_bytes;
                inconsistent += i.inconsistent_segments + p.inconsistent_segments;
                *talkers.entry(r.orig.0).or_default() += i.l2_bytes;
                *talkers.entry(r.resp.0).or_default() += p.l2_bytes;
            }
            Event::Anomaly(k) => *anomalies.entry(k.as_str()).or_default() += 1,
            _ => {}
        }
        Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let (read, t) = (summary.read, summary.tracker);
    let out = &mut io::stdout().lock();
    writeln!(out, "packets read        {}", read.packets)?;
    if input.bpf.is_some() {
        writeln!(out, "  filtered out      {}", read.filtered)?;
    }
    // The ledger: every frame read, and every packet found inside a tunnel, has one
    // outcome; a datagram rebuilt from fragments counts once.
    let decap = t.tunnels.decapsulated();
    if decap > 0 || t.tunnels.malformed > 0 || t.tunnels.too_deep > 0 {
        write!(out, "  + from tunnels    {decap}")?;
        let kinds: Vec<String> = flowscope::packet::TunnelKind::ALL
            .iter()
            .filter(|k| t.tunnels.of(**k) > 0)
            .map(|k| format!("{} {}", k.as_str(), t.tunnels.of(*k)))
            .collect();
        writeln!(
            out,
            " ({}; unreadable {}, too deep {})",
            kinds.join(", "),
            t.tunnels.malformed,
            t.tunnels.too_deep
        )?;
    }
    writeln!(out, "  in flows          {}", t.tracked)?;
    writeln!(out, "  absorbed (policy) {}", t.dropped)?;
    if opts.verify_checksums {
        writeln!(out, "  bad checksum      {}", t.bad_checksum)?;
    }
    let d = t.defrag;
    if d.fragments > 0 {
        writeln!(out, "  held as fragments {}", d.absorbed)?;
        writeln!(
            out,
            "    fragments {}, datagrams rebuilt {}, duplicates {}, overlapping {} ({} inconsistent), tiny {}",
            d.fragments, d.reassembled, d.duplicates, d.overlapping, d.inconsistent, d.tiny
        )?;
        writeln!(
            out,
            "    datagrams dropped: overlap {}, timeout {}, invalid {}, cap {}; snapped fragments {}",
            d.dropped_overlap, d.dropped_timeout, d.dropped_invalid, d.dropped_cap, d.dropped_truncated
        )?;
    }
    writeln!(out, "  unmatched         {}", t.unmatched.total())?;
    for (name, n) in [
        ("fragment", t.unmatched.fragment),
        ("malformed", t.unmatched.malformed),
        ("not_ip", t.unmatched.not_ip),
        ("unsupported_link_type", t.unmatched.unsupported_link_type),
    ] {
        if n > 0 {
            writeln!(out, "    {name:<22}{n}")?;
        }
    }
    if read.skipped_link_type > 0 {
        writeln!(out, "  skipped link type {}", read.skipped_link_type)?;
    }
    writeln!(out, "bytes on the wire   {}", read.bytes)?;
    if let (Some(a), Some(b)) = (read.first_ts, read.last_ts) {
        writeln!(
            out,
            "capture span        {a} .. {b} ({:.3} s)",
            b.saturating_duration_since(a).as_secs_f64()
        )?;
    }
    writeln!(out, "flows               {flows} ({flow_packets} packets, {flow_bytes} bytes, {missed} bytes missed)")?;
    let list = |m: &BTreeMap<&'static str, u64>| {
        m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    };
    writeln!(out, "  by protocol       {}", list(&by_proto))?;
    writeln!(out, "  by end reason     {}", list(&by_reason))?;
    writeln!(out, "  by conn_state     {}", list(&by_state))?;
    writeln!(
        out,
        "anomalies           {}",
        if anomalies.is_empty() { "none".into() } else { list(&anomalies) }
    )?;
    writeln!(out, "inconsistent TCP segments {inconsistent} (bytes differing from bytes seen before at the same offsets)")?;
    let mut top: Vec<(IpAddr, u64)> = talkers.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    writeln!(out, "top talkers (bytes sent)")?;
    for (ip, bytes) in top.iter().take(10) {
        writeln!(out, "  {ip:<40}{bytes}")?;
    }
    writeln!(
        out,
        "processing          {:.3} s, {:.0} packets/s, {:.1} MB/s",
        elapsed,
        read.packets as f64 / elapsed,
        read.bytes as f64 / elapsed / 1e6
    )?;
    Ok(())
}
