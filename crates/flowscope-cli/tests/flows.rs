//! End-to-end runs of `flowscope flows`, `streams` and `stats` against tshark's counts,
//! Zeek's conn.log baselines, tcpflow's streams, and each other.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowscope"))
}

fn shared() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    assert!(p.join("pcaps/index.tsv").exists(), "../shared must sit beside the checkout");
    p
}

/// `flowscope flows -f jsonl` over `files`, parsed.
fn flows(files: &[PathBuf], extra: &[&str]) -> Vec<Value> {
    let out = bin().arg("flows").arg("-q").args(extra).args(files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// Captures whose tshark conversations the records must equal direction by direction:
/// no tunnels and no IP fragments (which tshark counts differently until those are
/// handled; see the library's tests for the full comparison and its reasons).
const PLAIN: &[&str] = &[
    "tcp/arkime__wireshark-retrans.pcap",
    "tcp/zeek__handshake-reorder.pcap",
    "tcp/zeek__ssh-dups.pcap",
    "tcp/zeek__missing-syn.pcap",
    "tcp/zeek__206_example_b.pcap",
    "tcp/suricata-verify__tls-subjectaltname.pcap",
    "tcp/chrissanders-packets__http_espn.pcapng",
    "link/tcpdump__resp_1_benchmark.pcap",
    "link/suricata-verify__decode-sll2-02.pcap",
    "link/suricata-verify__http-range-multiflows.pcap",
    "link/zeek__nflog-http.pcap",
    "format/zeek__pcapng-multi-interface.pcapng",
    "format/tcpdump__pptp.pcap",
    "format/suricata-verify__nfs3-01.pcap",
    "large/zeek__echo-connections.pcap",
];

#[test]
fn records_equal_tshark_per_direction() {
    for rel in PLAIN {
        let recs = flows(&[shared().join("pcaps").join(rel)], &[]);
        let mut ours: HashMap<String, (u64, u64, u64)> = HashMap::new();
        for r in &recs {
            let proto = r["proto"].as_str().unwrap();
            if proto != "tcp" && proto != "udp" {
                continue;
            }
            let ep = |h: &str, p: &str| {
                let a = r[h].as_str().unwrap();
                if a.contains(':') {
                    format!("[{a}]:{}", r[p])
                } else {
                    format!("{a}:{}", r[p])
                }
            };
            let (o, s) = (ep("id.orig_h", "id.orig_p"), ep("id.resp_h", "id.resp_p"));
            let add = |m: &mut HashMap<String, (u64, u64, u64)>, k: String, f, b, ip| {
                let t = m.entry(k).or_default();
                t.0 += f;
                t.1 += b;
                t.2 += ip;
            };
            add(
                &mut ours,
                format!("{proto} {o} {s}"),
                u(r, "orig_pkts"),
                u(r, "orig_l2_bytes"),
                u(r, "orig_ip_bytes"),
            );
            add(
                &mut ours,
                format!("{proto} {s} {o}"),
                u(r, "resp_pkts"),
                u(r, "resp_l2_bytes"),
                u(r, "resp_ip_bytes"),
            );
        }
        let name = Path::new(rel).file_stem().unwrap().to_string_lossy().to_string();
        let refs = std::fs::read_to_string(
            shared().join("pcaps/ref/conversations").join(format!("{name}.jsonl")),
        )
        .unwrap();
        let mut theirs: HashMap<String, (u64, u64, u64)> = HashMap::new();
        for line in refs.lines().filter(|l| !l.is_empty()) {
            let c: Value = serde_json::from_str(line).unwrap();
            let (p, a, b) =
                (c["proto"].as_str().unwrap(), c["a"].as_str().unwrap(), c["b"].as_str().unwrap());
            for (k, f, by, ip) in [
                (format!("{p} {a} {b}"), "a_frames", "a_bytes", "a_ip_bytes"),
                (format!("{p} {b} {a}"), "b_frames", "b_bytes", "b_ip_bytes"),
            ] {
                let t = theirs.entry(k).or_default();
                t.0 += u(&c, f);
                t.1 += u(&c, by);
                t.2 += u(&c, ip);
            }
        }
        for (k, want) in &theirs {
            assert_eq!(ours.get(k).copied().unwrap_or_default(), *want, "{rel}: {k}");
        }
    }
}

#[test]
fn zeek_format_reads_back_as_the_same_records() {
    let file = shared().join("pcaps/tcp/suricata-verify__tls-subjectaltname.pcap");
    let json = flows(std::slice::from_ref(&file), &[]);
    let out = bin().args(["flows", "-q", "-f", "zeek"]).arg(&file).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> =
        text.lines().find_map(|l| l.strip_prefix("#fields\t")).unwrap().split('\t').collect();
    assert!(text.lines().next().unwrap().starts_with("#separator \\x09"));
    assert!(text.lines().last().unwrap().starts_with("#close\t"));
    let rows: Vec<BTreeMap<&str, &str>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| fields.iter().copied().zip(l.split('\t')).collect())
        .collect();
    assert_eq!(rows.len(), json.len());
    for (row, rec) in rows.iter().zip(&json) {
        for (k, v) in row {
            let j = &rec[*k];
            let as_text = match j {
                Value::Null => "-".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            // JSON omits unset fields (null here); TSV writes "-". Times are compared as
            // numbers: TSV pads to microseconds ("3.829990"), JSON does not ("3.82999").
            match (v.parse::<f64>(), j.as_f64()) {
                (Ok(t), Some(n)) => assert!((t - n).abs() < 5e-7, "{k}: {v} vs {n}"),
                _ => assert_eq!(*v, as_text, "{k}"),
            }
        }
    }
    // CSV: a header row, then the same number of records.
    let out = bin().args(["flows", "-q", "-f", "csv"]).arg(&file).output().unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("ts,uid,id.orig_h,"));
    assert_eq!(csv.lines().count(), json.len() + 1);
}

#[test]
fn uids_are_unique_and_deterministic() {
    let file = shared().join("pcaps/large/gopacket__cip.pcap");
    let a = flows(std::slice::from_ref(&file), &[]);
    let b = flows(std::slice::from_ref(&file), &[]);
    let uids: Vec<&str> = a.iter().map(|r| r["uid"].as_str().unwrap()).collect();
    let mut unique = uids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), uids.len());
    assert!(uids.iter().all(|u| u.len() == 18 && u.starts_with('C')));
    assert_eq!(a, b);
}

#[test]
fn zeek_conformance_through_the_cli() {
    let root = shared().join("zeek-conformance");
    let compared = [
        "conn_state",
        "orig_bytes",
        "resp_bytes",
        "orig_pkts",
        "resp_pkts",
        "orig_ip_bytes",
        "resp_ip_bytes",
        "missed_bytes",
        "history",
    ];
    let mut per_field: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut tunnelled = 0usize;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    // `cases.tsv`: case, trace, and whether Zeek's test ran it with -C (checksums not
    // verified); the others are compared with ours verified too.
    let table = std::fs::read_to_string(root.join("cases.tsv")).unwrap();
    let ignores_checksums: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split('\t').collect::<Vec<_>>().get(..3).map(|f| (f[0], f[2])))
        .filter(|(_, c)| *c == "True")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(ignores_checksums.len(), 15);
    for case in dirs {
        let trace = ["trace.pcap", "trace.pcapng"]
            .iter()
            .map(|t| case.join(t))
            .find(|p| p.exists())
            .unwrap();
        let text = std::fs::read_to_string(case.join("conn.log")).unwrap();
        let Some(fields) = text.lines().find_map(|l| l.strip_prefix("#fields\t")) else { continue };
        let fields: Vec<&str> = fields.split('\t').collect();
        if !fields.contains(&"id.orig_h") {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let mut args = vec!["--other-idle", "60", "--tcp-attempt-idle", "5"];
        if !ignores_checksums.contains(&name.as_str()) {
            args.push("--verify-checksums");
        }
        let ours = flows(&[trace], &args);
        let mut by_key: HashMap<String, Vec<&Value>> = HashMap::new();
        for r in &ours {
            let k = format!(
                "{} {} {} {} {}",
                r["proto"],
                r["id.orig_h"].as_str().unwrap(),
                r["id.orig_p"],
                r["id.resp_h"].as_str().unwrap(),
                r["id.resp_p"]
            );
            by_key.entry(k).or_default().push(r);
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let z: HashMap<&str, &str> = fields.iter().copied().zip(line.split('\t')).collect();
            if !["tcp", "udp"].contains(&z["proto"]) {
                continue;
            }
            tunnelled += usize::from(z.get("tunnel_parents").is_some_and(|t| *t != "-"));
            let k = format!(
                "\"{}\" {} {} {} {}",
                z["proto"], z["id.orig_h"], z["id.orig_p"], z["id.resp_h"], z["id.resp_p"]
            );
            let Some(r) =
                by_key
                    .get_mut(&k)
                    .and_then(|v| if v.is_empty() { None } else { Some(v.remove(0)) })
            else {
                for f in compared {
                    per_field.entry(f).or_default().1 += 1;
                }
                continue;
            };
            for f in compared {
                let mine = match &r[f] {
                    Value::String(s) => s.clone(),
                    Value::Null => "-".into(),
                    v => v.to_string(),
                };
                let e = per_field.entry(f).or_default();
                e.1 += 1;
                if z[f] == mine {
                    e.0 += 1;
                }
            }
        }
    }
    eprintln!("cli vs zeek: {tunnelled} of the TCP/UDP connections are inside tunnels");
    assert!(tunnelled >= 8, "{tunnelled}");
    for (f, (ok, n)) in &per_field {
        eprintln!("cli vs zeek: {f}: {ok}/{n} ({:.1}%)", *ok as f64 * 100.0 / *n as f64);
        assert!(*ok as f64 / *n as f64 >= 0.93, "{f}: {ok}/{n}");
    }
}

#[test]
fn streams_equal_tcpflow_and_index_lists_them() {
    let dir = std::env::temp_dir().join(format!("flowscope-streams-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = shared().join("pcaps/tcp/chrissanders-packets__http_espn.pcapng");
    // Twice into the same directory: the second run must replace the first's files, not
    // append to them.
    for _ in 0..2 {
        let out = bin().args(["streams", "-q", "-d"]).arg(&dir).arg(&file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let digests = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../flowscope/tests/data/tcpflow/digests.tsv"),
    )
    .unwrap();
    let want: Vec<(u64, String)> = digests
        .lines()
        .filter(|l| l.starts_with("tcp/chrissanders-packets__http_espn.pcapng\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[2].parse().unwrap(), f[3].to_string())
        })
        .filter(|(n, _)| *n > 8)
        .collect();
    let index = std::fs::read_to_string(dir.join("index.jsonl")).unwrap();
    let entries: Vec<Value> = index.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 25);
    let mut ours = Vec::new();
    for e in &entries {
        for (side, gaps) in [("orig_file", "orig_gaps"), ("resp_file", "resp_gaps")] {
            if let Some(name) = e[side].as_str() {
                let mut bytes = std::fs::read(dir.join(name)).unwrap();
                // Our files leave gaps out; tcpflow writes zeros in their place. Put the
                // zeros back at the offsets the index names, which must rebuild its file.
                for gap in e[gaps].as_array().unwrap() {
                    let (at, len) =
                        (gap[0].as_u64().unwrap() as usize, gap[1].as_u64().unwrap() as usize);
                    assert!(at <= bytes.len(), "gap offset {at} beyond {} bytes", bytes.len());
                    bytes.splice(at..at, std::iter::repeat_n(0u8, len));
                }
                use sha1::Digest;
                let hex: String =
                    sha1::Sha1::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
                ours.push((bytes.len() as u64, hex));
            }
        }
        assert_eq!(e["orig_missed_bytes"], 0);
    }
    // With the gaps filled back in, ours must be exactly tcpflow's set of streams.
    ours.sort();
    let mut want = want;
    want.sort();
    assert_eq!(ours, want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stats_and_metrics_reconcile_with_the_records() {
    let file = shared().join("pcaps/tcp/suricata-verify__tls-subjectaltname.pcap");
    let metrics =
        std::env::temp_dir().join(format!("flowscope-metrics-{}.prom", std::process::id()));
    let recs = flows(std::slice::from_ref(&file), &["--metrics", metrics.to_str().unwrap()]);
    let prom = std::fs::read_to_string(&metrics).unwrap();
    let _ = std::fs::remove_file(&metrics);
    for family in [
        ("flowscope_flows_created_total", "counter"),
        ("flowscope_flows_ended_total", "counter"),
        ("flowscope_flows_active", "gauge"),
        ("flowscope_packets_unmatched_total", "counter"),
        ("flowscope_bytes_total", "counter"),
        ("flowscope_flow_duration_seconds", "histogram"),
        ("flowscope_flow_packets", "histogram"),
        ("flowscope_flow_bytes", "histogram"),
        ("flowscope_anomalies_total", "counter"),
        ("flowscope_reassembly_dropped_ooo_total", "counter"),
        ("flowscope_reassembly_bytes_dropped_oversize_total", "counter"),
        ("flowscope_reassembler_high_watermark_bytes", "histogram"),
    ] {
        assert!(prom.contains(&format!("# TYPE {} {}", family.0, family.1)), "{family:?}");
    }
    let sum = |prefix: &str| -> u64 {
        prom.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    assert_eq!(sum("flowscope_flows_created_total{"), recs.len() as u64);
    assert_eq!(sum("flowscope_flows_ended_total{"), recs.len() as u64);
    assert_eq!(sum("flowscope_flows_active"), 0);
    let l2 = |k: &str| recs.iter().map(|r| u(r, k)).sum::<u64>();
    assert_eq!(sum("flowscope_bytes_total{side=\"initiator\"}"), l2("orig_l2_bytes"));
    assert_eq!(sum("flowscope_bytes_total{side=\"responder\"}"), l2("resp_l2_bytes"));
    assert_eq!(sum("flowscope_flow_packets_count"), recs.len() as u64);

    let out = bin().args(["stats", "-q"]).arg(&file).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let packets: u64 = recs.iter().map(|r| u(r, "orig_pkts") + u(r, "resp_pkts")).sum();
    assert!(
        text.contains(&format!("flows               {} ({packets} packets", recs.len())),
        "{text}"
    );
    assert!(text.contains("packets read        3138"), "{text}");
}

/// Suricata's partial-overlap capture resends delivered bytes with different content:
/// `stats` counts it only when delivered bytes are kept to compare against.
#[test]
fn stats_counts_inconsistent_retransmissions_when_asked_to_check_them() {
    let file =
        shared().join("pcaps/tcp/suricata-verify__eve-overlap-payload-04-partial-overlap.pcap");
    let count = |extra: &[&str]| {
        let out = bin().args(["stats", "-q"]).args(extra).arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.lines().find(|l| l.starts_with("inconsistent TCP segments ")).unwrap();
        line.split_whitespace().nth(3).unwrap().parse::<u64>().unwrap()
    };
    assert_eq!(count(&[]), 0);
    assert_eq!(count(&["--check-retransmits", "65536"]), 1);
}

#[test]
fn bad_inputs_and_options() {
    let out = bin().args(["flows", "/nonexistent.pcap"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.pcap: cannot open"));
    let out = bin().args(["flows", "-f", "xml", "x.pcap"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["flows", "--tcp-idle=-3"])
        .arg(shared().join("pcaps/tcp/zeek__syn-then-rst.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tcp-idle must be a positive number"));
    // A file that is not a capture at all, and a directory: one line naming the file.
    let junk = std::env::temp_dir().join(format!("flowscope-junk-{}.pcap", std::process::id()));
    std::fs::write(&junk, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").unwrap();
    for bad in [junk.clone(), std::env::temp_dir()] {
        let out = bin().args(["flows"]).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", bad.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&bad.display().to_string()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let _ = std::fs::remove_file(&junk);
    // Garbage after good packets: the flows before it are written, then the error.
    let out = bin()
        .args(["flows"])
        .arg(shared().join("pcaps/malformed/suricata-verify__bug-1450-04.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("byte offset 5035"));
    // Cut mid-record: every flow, a warning, exit 0.
    let out = bin()
        .args(["flows"])
        .arg(shared().join("pcaps/malformed/suricata-verify__http-mime-truncated.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning") && err.contains("byte offset 2715459"), "{err}");
}

#[test]
fn closed_pipe_exits_quietly_and_no_progress_bar_off_a_terminal() {
    use std::io::Read;
    use std::process::Stdio;
    let file = shared().join("pcaps/large/gopacket__cip.pcap");
    let mut child = bin()
        .args(["flows", "-f", "zeek"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then close the pipe, as `| head -c1` would.
    let mut stdout = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    stdout.read_exact(&mut one).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // stderr is a pipe here, not a terminal: no progress bar, nothing at all.
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn streams_stay_within_a_small_number_of_open_files() {
    // 500 echo connections, 1,000 stream files, many written at once. Under a limit of
    // 90 descriptors (64 stream files, stdio, the index, the input) every file is still
    // written; under 40 the run fails, which shows the flows do overlap.
    let file = shared().join("pcaps/large/zeek__echo-connections.pcap");
    let bin = env!("CARGO_BIN_EXE_flowscope");
    for (limit, ok) in [(90, true), (40, false)] {
        let dir =
            std::env::temp_dir().join(format!("flowscope-fds-{limit}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" streams -q -d \"$1\" \"$2\""))
            .arg(bin)
            .arg(&dir)
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "limit {limit}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if ok {
            let files = std::fs::read_dir(&dir).unwrap().count();
            assert_eq!(files, 1001, "1,000 stream files and the index");
        } else {
            assert!(String::from_utf8_lossy(&out.stderr).contains("Too many open files"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn every_shared_capture_runs_through_every_command_without_a_panic() {
    // Exit 0, or exit 1 with one line naming the file: nothing else, on all 85 captures.
    let mut files = Vec::new();
    let mut dirs = vec![shared().join("pcaps")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && p.file_name().is_some_and(|n| n != "ref") {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 85, "{}", files.len());
    let dir = std::env::temp_dir().join(format!("flowscope-all-{}", std::process::id()));
    let mut failed = 0;
    for f in &files {
        let _ = std::fs::remove_dir_all(&dir);
        for args in [&["flows", "-q", "-f", "zeek"][..], &["stats", "-q"], &["streams", "-q", "-d"]]
        {
            let mut cmd = bin();
            cmd.args(args);
            if args[0] == "streams" {
                cmd.arg(&dir);
            }
            let out = cmd.arg(f).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => assert!(err.is_empty(), "{args:?} {}: {err}", f.display()),
                Some(1) => {
                    failed += 1;
                    assert_eq!(err.lines().count(), 1, "{err}");
                    assert!(err.contains(&f.display().to_string()), "{err}");
                }
                other => panic!("{args:?} {}: exit {other:?}: {err}", f.display()),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    // Three files are broken on purpose (bad version, bad pcapng block, absurd record).
    assert_eq!(failed, 3 * 3);
}

#[test]
fn streams_index_lists_the_first_thousand_gaps_and_counts_the_rest() {
    use flowscope::packet::LinkType;
    use flowscope::testkit::{flags, write_pcap, Frame};
    use flowscope::Timestamp;
    let (c, s) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let ts = |i: u32| Timestamp::from_secs_micros(1_700_000_000, i);
    let mut pkts = vec![
        (ts(0), Frame::tcp(c, 40000, s, 80, flags::SYN, 999, 0).build()),
        (ts(1), Frame::tcp(s, 80, c, 40000, flags::SYN_ACK, 4999, 1000).build()),
        (ts(2), Frame::tcp(c, 40000, s, 80, flags::ACK, 1000, 5000).build()),
    ];
    // 1,100 one-byte segments, each after a one-byte hole.
    for i in 0..1100u32 {
        let f = Frame::tcp(c, 40000, s, 80, flags::ACK, 1000 + 2 * i + 1, 5000).payload(b"x");
        pkts.push((ts(3 + i), f.build()));
    }
    let dir = std::env::temp_dir().join(format!("flowscope-gaps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("holes.pcap");
    std::fs::write(&pcap, write_pcap(LinkType::ETHERNET, 65535, &pkts)).unwrap();
    let out_dir = dir.join("out");
    let out = bin().args(["streams", "-q", "-d"]).arg(&out_dir).arg(&pcap).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = std::fs::read_to_string(out_dir.join("index.jsonl")).unwrap();
    let entry: Value = serde_json::from_str(index.lines().next().unwrap()).unwrap();
    assert_eq!(entry["orig_gaps"].as_array().unwrap().len(), 1000);
    assert_eq!(entry["orig_gaps_unlisted"], 100);
    assert_eq!(entry["orig_missed_bytes"], 1100);
    assert!(entry.get("resp_gaps_unlisted").is_none());
    assert_eq!(
        std::fs::read(out_dir.join(entry["orig_file"].as_str().unwrap())).unwrap().len(),
        1100
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn active_timeout_writes_interim_records_of_long_flows() {
    use flowscope::packet::LinkType;
    use flowscope::testkit::{write_pcap, Frame};
    use flowscope::Timestamp;
    let (c, s) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    // A UDP flow with one 10-byte datagram a second for 100 s (t = 0..99), answered
    // every other second, and a short flow that never reaches the interval.
    let mut pkts = Vec::new();
    for i in 0..100u32 {
        let ts = Timestamp::from_secs_micros(1_700_000_000 + i, 0);
        pkts.push((ts, Frame::udp(c, 5000, s, 53).payload(&[7; 10]).build()));
        if i % 2 == 0 {
            pkts.push((ts, Frame::udp(s, 53, c, 5000).payload(&[8; 20]).build()));
        }
        if i < 3 {
            pkts.push((ts, Frame::udp(c, 6000, s, 123).payload(&[9; 4]).build()));
        }
    }
    let dir = std::env::temp_dir().join(format!("flowscope-interim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("long.pcap");
    std::fs::write(&pcap, write_pcap(LinkType::ETHERNET, 65535, &pkts)).unwrap();
    let recs = flows(std::slice::from_ref(&pcap), &["--active-timeout", "10", "--udp-idle", "600"]);
    let long: Vec<&Value> = recs.iter().filter(|r| r["id.orig_p"] == 5000).collect();
    // Due at t = 10, 20, ..., 90: nine interim records, then the final one.
    assert_eq!(long.len(), 10, "{long:#?}");
    let (interim, last) = long.split_at(9);
    let mut prev = (0, 0);
    for (k, r) in interim.iter().enumerate() {
        assert_eq!(r["interim"], true);
        assert!(r.get("end_reason").is_none(), "{r}");
        assert_eq!(r["uid"], last[0]["uid"], "interim records carry the flow's uid");
        // Counters so far, up to and including the packet that made the record due
        // (the request at t = 10(k+1), before that second's answer).
        let (o, p) = (u(r, "orig_pkts"), u(r, "resp_pkts"));
        assert_eq!(o, 10 * (k as u64 + 1) + 1, "{r}");
        assert_eq!(p, 5 * (k as u64 + 1), "{r}");
        assert_eq!(u(r, "orig_bytes"), 10 * o);
        assert!(o > prev.0 && p > prev.1, "counters are monotonic");
        prev = (o, p);
    }
    let f = last[0];
    assert_eq!(f["interim"], false);
    assert_eq!(f["end_reason"], "idle");
    // The final record's counters are the whole flow: each interval's packets summed.
    assert_eq!((u(f, "orig_pkts"), u(f, "resp_pkts")), (100, 50));
    assert_eq!((u(f, "orig_bytes"), u(f, "resp_bytes")), (1000, 1000));
    // The short flow has only its final record.
    let short: Vec<&Value> = recs.iter().filter(|r| r["id.orig_p"] == 6000).collect();
    assert_eq!(short.len(), 1);
    assert_eq!(short[0]["interim"], false);
    // Without the option the records have no interim field.
    let plain = flows(std::slice::from_ref(&pcap), &["--udp-idle", "600"]);
    assert_eq!(plain.len(), 2);
    assert!(plain.iter().all(|r| r.get("interim").is_none()));
    // Zeek's TSV gets the column, typed bool, T for interim.
    let out = bin()
        .args(["flows", "-q", "-f", "zeek", "--active-timeout", "10"])
        .arg(&pcap)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text
        .lines()
        .any(|l| l.starts_with("#fields\t") && l.ends_with("\tend_reason\tinterim")));
    assert!(text.lines().any(|l| l.starts_with("#types\t") && l.ends_with("\tstring\tbool")));
    assert_eq!(text.lines().filter(|l| l.ends_with("\t-\tT")).count(), 9);
    assert_eq!(text.lines().filter(|l| l.ends_with("\tidle\tF")).count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn active_timeout_reaches_flows_inside_tunnels() {
    use flowscope::packet::LinkType;
    use flowscope::testkit::{write_pcap, Frame};
    use flowscope::Timestamp;
    let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
    // One VXLAN packet a second for 30 s, each carrying a DNS-like request of an inner
    // flow: both the outer UDP flow and the one inside are long-lived.
    let inner =
        Frame::udp(ip("192.168.0.1"), 5000, ip("192.168.0.2"), 53).payload(&[7; 10]).build();
    let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vxlan.extend_from_slice(&inner);
    let outer = Frame::udp(ip("10.0.0.1"), 40_000, ip("10.0.0.2"), 4789).payload(&vxlan).build();
    let pkts: Vec<(Timestamp, Vec<u8>)> = (0..30u32)
        .map(|i| (Timestamp::from_secs_micros(1_700_000_000 + i, 0), outer.clone()))
        .collect();
    let dir = std::env::temp_dir().join(format!("flowscope-interim-tunnel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("vxlan.pcap");
    std::fs::write(&pcap, write_pcap(LinkType::ETHERNET, 65535, &pkts)).unwrap();
    let recs = flows(std::slice::from_ref(&pcap), &["--active-timeout", "10"]);
    for port in [40_000, 5000] {
        let of: Vec<&Value> = recs.iter().filter(|r| r["id.orig_p"] == port).collect();
        // Due at t = 10 and 20, then the final record.
        let interim: Vec<u64> =
            of.iter().filter(|r| r["interim"] == true).map(|r| u(r, "orig_pkts")).collect();
        assert_eq!(interim, [11, 21], "port {port}: {of:#?}");
        assert_eq!(of.iter().filter(|r| r["interim"] == false).count(), 1, "port {port}");
    }
    // The inner flow's interim records name the outer flow as their parent.
    let outer_uid = recs.iter().find(|r| r["id.orig_p"] == 40_000).unwrap()["uid"].clone();
    for r in recs.iter().filter(|r| r["id.orig_p"] == 5000) {
        assert_eq!(r["tunnel_parents"], serde_json::json!([outer_uid]), "{r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tunnels: the flows inside are written too, each naming the uids of the flows that
/// carried it, and those uids are records of the same output; `--tunnel-depth 0` writes
/// only the outer flows.
#[test]
fn tunnelled_records_name_their_parents() {
    let geneve = shared().join("pcaps/encap/zeek__geneve.pcap");
    let recs = flows(std::slice::from_ref(&geneve), &[]);
    let uids: HashMap<&str, &Value> =
        recs.iter().map(|r| (r["uid"].as_str().unwrap(), r)).collect();
    let inner: Vec<&Value> = recs.iter().filter(|r| r.get("tunnel_parents").is_some()).collect();
    assert_eq!(inner.len(), 1, "{recs:#?}");
    let icmp = inner[0];
    assert_eq!(
        (icmp["proto"].as_str(), icmp["id.orig_h"].as_str()),
        (Some("icmp"), Some("30.0.0.1"))
    );
    // Zeek's record for this connection: 3 packets each way, 252 IP bytes, two parents
    // (the Geneve packets of the two directions travel in two UDP flows).
    assert_eq!((u(icmp, "orig_pkts"), u(icmp, "resp_pkts"), u(icmp, "orig_ip_bytes")), (3, 3, 252));
    let parents: Vec<&str> =
        icmp["tunnel_parents"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(parents.len(), 2);
    for p in &parents {
        let parent = uids.get(p).unwrap_or_else(|| panic!("parent {p} not in the output"));
        assert_eq!((parent["proto"].as_str(), u(parent, "id.resp_p")), (Some("udp"), 6081));
    }
    // Zeek TSV: the set column, comma-separated.
    let out = bin().args(["flows", "-f", "zeek"]).arg(&geneve).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.contains(&format!("\t{},{}\t", parents[0], parents[1]))),
        "{text}"
    );
    // `packets` shows each layer.
    let out = bin().arg("packets").arg(&geneve).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.contains("udp 20.0.0.1 50901 > 20.0.0.2 6081"), "{first}");
    assert!(first.contains("| geneve icmp 30.0.0.1 8 > 30.0.0.2 0"), "{first}");
    // Off: only the two outer flows.
    let outer = flows(&[geneve], &["--tunnel-depth", "0"]);
    assert_eq!(outer.len(), 2);
    assert!(outer.iter().all(|r| r.get("tunnel_parents").is_none() && r["proto"] == "udp"));
}

/// IP fragments: a SYN whose TCP header is split over two fragments is one flow of one
/// packet (the datagram); with `--no-defrag` there is nothing to key.
#[test]
fn fragmented_syn_is_one_packet_unless_defragmentation_is_off() {
    let syn = shared().join("pcaps/frag/zeek__fragmented-syn.pcap");
    let recs = flows(std::slice::from_ref(&syn), &[]);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!((u(&recs[0], "orig_pkts"), recs[0]["history"].as_str()), (1, Some("S")));
    assert!(flows(&[syn], &["--no-defrag"]).is_empty());
}
