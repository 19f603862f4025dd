//! End-to-end runs of the `flowscope` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowscope"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared(rel: &str) -> PathBuf {
    let p = root().join("../shared/pcaps").join(rel);
    assert!(p.exists(), "{} missing: ../shared must sit beside the checkout", p.display());
    p
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `out` failed with exit 1 and one line on stderr holding each of `needles`.
fn fails_in_one_line(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "{err}");
    }
}

#[test]
fn packets_on_the_demo_sample() {
    let out = run(&["packets".as_ref(), root().join("samples/demo.pcap").as_os_str()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 24);
    assert!(
        lines[0].contains("udp 192.0.2.10 53124 > 198.51.100.53 53 payload=29"),
        "{}",
        lines[0]
    );
    assert!(
        lines[2].contains("tcp 192.0.2.10 49152 > 198.51.100.80 80 flags=0x002"),
        "{}",
        lines[2]
    );
    assert!(lines[17].contains("vlan=42"), "{}", lines[17]);
    assert!(lines[23].contains("unmatched not_ip"), "{}", lines[23]);
    // Both directions of a flow carry the same Community ID.
    let cid = |l: &str| l.rsplit("cid=").next().unwrap().to_string();
    assert_eq!(cid(lines[2]), cid(lines[3]));
    assert!(out.stderr.is_empty());
}

#[test]
fn several_files_read_as_one_capture() {
    let f = shared("tcp/zeek__syn-then-rst.pcap");
    let out = run(&["packets".as_ref(), f.as_os_str(), f.as_os_str()]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 4);
    assert!(stdout.lines().nth(3).unwrap().starts_with("4 "));
}

#[test]
fn missing_file_is_one_line_and_exit_1() {
    let out = run(&["packets".as_ref(), "/nonexistent/x.pcap".as_ref()]);
    fails_in_one_line(&out, &["/nonexistent/x.pcap", "cannot open"]);
}

#[test]
fn garbage_names_the_file_and_exits_1() {
    let out = run(&["packets".as_ref(), root().join("Cargo.toml").as_os_str()]);
    fails_in_one_line(&out, &["Cargo.toml: not a pcap or pcapng file"]);
}

#[test]
fn oversized_record_names_the_offset_and_exits_1() {
    let f = shared("malformed/suricata-verify__bug-1450-04.pcap");
    let out = run(&["packets".as_ref(), f.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout).lines().count(), 6, "the packets before the bad record");
    let err = text(&out.stderr);
    assert!(err.contains("byte offset 5035") && err.contains("4325376"), "{err}");
}

#[test]
fn truncated_capture_warns_and_exits_0() {
    let f = shared("malformed/suricata-verify__http-mime-truncated.pcap");
    let out = run(&["packets".as_ref(), f.as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).lines().count(), 2696);
    let err = text(&out.stderr);
    assert!(err.contains("warning") && err.contains("byte offset 2715459"), "{err}");
    let quiet = run(&["packets".as_ref(), "-q".as_ref(), f.as_os_str()]);
    assert!(quiet.stderr.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["packets".as_ref()]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate".as_ref()]).status.code(), Some(2));
    let help = run(&["--help".as_ref()]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("Exit codes"));
}

#[test]
fn broken_pipe_exits_0() {
    use std::io::Read;
    use std::process::Stdio;
    let f = shared("large/zeek__echo-connections.pcap");
    let mut child =
        bin().arg("packets").arg(&f).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 64];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn a_full_disk_is_a_one_line_error_naming_the_output() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("SKIPPED: no /dev/full on this system");
        return;
    }
    let out = run(&[
        "flows".as_ref(),
        root().join("samples/demo.pcap").as_os_str(),
        "-o".as_ref(),
        "/dev/full".as_ref(),
    ]);
    fails_in_one_line(&out, &["/dev/full: cannot write: No space left on device"]);
}

/// `args` with `input` piped to standard input.
fn run_with_stdin(args: &[&std::ffi::OsStr], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from another thread: the child may fill its stdout pipe before it has
    // read all of its input.
    let writer = std::thread::spawn(move || {
        // The child may stop reading early (an error); that is for the test to judge.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn a_dash_reads_the_capture_from_standard_input() {
    let f = shared("large/gopacket__cip.pcap");
    let bytes = std::fs::read(&f).unwrap();
    let from_file = run(&["flows".as_ref(), "-f".as_ref(), "jsonl".as_ref(), f.as_os_str()]);
    assert!(from_file.status.success(), "{}", text(&from_file.stderr));
    let piped =
        run_with_stdin(&["flows".as_ref(), "-f".as_ref(), "jsonl".as_ref(), "-".as_ref()], &bytes);
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert!(!from_file.stdout.is_empty());
    assert_eq!(text(&piped.stdout), text(&from_file.stdout));

    // Between files, standard input takes its place in the order.
    let g = shared("tcp/zeek__syn-then-rst.pcap");
    let listed = run(&["packets".as_ref(), g.as_os_str(), g.as_os_str()]);
    let mixed = run_with_stdin(
        &["packets".as_ref(), g.as_os_str(), "-".as_ref()],
        &std::fs::read(&g).unwrap(),
    );
    assert!(mixed.status.success(), "{}", text(&mixed.stderr));
    assert_eq!(text(&mixed.stdout), text(&listed.stdout));
}

#[test]
fn standard_input_errors_name_it() {
    let out = run_with_stdin(&["packets".as_ref(), "-".as_ref()], b"this is not a capture at all");
    fails_in_one_line(&out, &["<stdin>: not a pcap or pcapng file"]);

    // A capture cut mid-record on standard input: the packets before it, a warning, 0.
    let bytes = std::fs::read(shared("large/gopacket__cip.pcap")).unwrap();
    let out = run_with_stdin(&["packets".as_ref(), "-".as_ref()], &bytes[..bytes.len() - 7]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.starts_with("flowscope: warning: <stdin>: "), "{err}");

    let out = run_with_stdin(&["packets".as_ref(), "-".as_ref(), "-".as_ref()], &bytes);
    fails_in_one_line(&out, &["can be read only once"]);
}

#[test]
fn bpf_reads_only_the_packets_the_filter_matches() {
    let demo = root().join("samples/demo.pcap");
    let bpf = |cmd: &str, expr: &str| {
        run(&[cmd.as_ref(), "--bpf".as_ref(), expr.as_ref(), demo.as_os_str()])
    };

    // The sample's packets 3-15 are untagged TCP; 18-23 are TCP in VLAN 42, which a
    // plain `tcp` does not match in libpcap's syntax (as with tcpdump, `vlan and tcp`
    // does). Packets keep their numbers in the file.
    let numbers = |out: &Output| -> Vec<u64> {
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().map(|l| l.split(' ').next().unwrap().parse().unwrap()).collect()
    };
    assert_eq!(numbers(&bpf("packets", "tcp")), (3..=15).collect::<Vec<_>>());
    assert_eq!(numbers(&bpf("packets", "vlan and tcp")), (18..=23).collect::<Vec<_>>());

    // Each link type gets its own program: raw IP (42 TCP packets) then Ethernet.
    let raw = shared("link/suricata-verify__tcp-empty-sack.pcap");
    let out = run(&[
        "packets".as_ref(),
        "--bpf".as_ref(),
        "tcp".as_ref(),
        raw.as_os_str(),
        demo.as_os_str(),
    ]);
    assert_eq!(numbers(&out), (1..=42).chain(45..=57).collect::<Vec<_>>());

    // IPv6 on BSD loopback from macOS (family 30): tcpdump 4.99 keeps all 24 packets, a
    // filter compiled without a capture file (for Linux's family number only) none.
    let mac = shared("link/gopacket__test_loopback.pcap");
    let out = run(&["packets".as_ref(), "--bpf".as_ref(), "ip6 and tcp".as_ref(), mac.as_os_str()]);
    assert_eq!(numbers(&out), (1..=24).collect::<Vec<_>>());

    // Length tests see the length on the wire, not what the snapshot length kept:
    // tcpdump 4.99 lists 690 packets for `greater 1000` here, all kept to 96 bytes.
    let cut = shared("format/zeek__timestamp.pcap");
    let out =
        run(&["packets".as_ref(), "--bpf".as_ref(), "greater 1000".as_ref(), cut.as_os_str()]);
    assert_eq!(numbers(&out).len(), 690);

    // Flows over the matching packets are the flows of the whole capture that consist
    // of them, record for record (uids aside: they number flows in creation order).
    let records = |out: &Output| -> Vec<serde_json::Value> {
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("uid");
                v
            })
            .collect()
    };
    let all = records(&run(&["flows".as_ref(), demo.as_os_str()]));
    let tcp =
        records(&run(&["flows".as_ref(), "--bpf".as_ref(), "tcp".as_ref(), demo.as_os_str()]));
    let expected: Vec<_> =
        all.into_iter().filter(|r| r["proto"] == "tcp" && r["vlan"].is_null()).collect();
    assert_eq!(tcp.len(), 2);
    assert_eq!(tcp, expected);

    // `stats` accounts for every packet read: filtered out, or through the tracker.
    let out = bpf("stats", "tcp");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("packets read        24\n  filtered out      11\n  in flows          13\n"),
        "{s}"
    );

    // A filter libpcap cannot compile: one line naming it, exit 1.
    let out = bpf("flows", "tcp and (");
    fails_in_one_line(&out, &["capture filter \"tcp and (\"", "syntax error"]);
}

/// `data` gzip-compressed; with `upto`, only its first `upto` bytes, flushed but with
/// the stream left unfinished (as a download cut short would leave it).
fn gzip(data: &[u8], upto: Option<usize>) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    match upto {
        None => {
            z.write_all(data).unwrap();
            z.finish().unwrap()
        }
        Some(n) => {
            z.write_all(&data[..n]).unwrap();
            z.flush().unwrap();
            z.get_ref().clone()
        }
    }
}

#[test]
fn gzip_captures_read_as_the_capture_inside() {
    let plain = shared("large/gopacket__cip.pcap");
    let bytes = std::fs::read(&plain).unwrap();
    let dir = std::env::temp_dir().join(format!("flowscope-gz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gz = dir.join("cip.pcap.gz");
    std::fs::write(&gz, gzip(&bytes, None)).unwrap();
    let jsonl = |f: &Path| run(&["flows".as_ref(), "-f".as_ref(), "jsonl".as_ref(), f.as_os_str()]);
    let want = jsonl(&plain);
    assert!(want.status.success() && !want.stdout.is_empty());
    let got = jsonl(&gz);
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert_eq!(text(&got.stdout), text(&want.stdout));
    let piped = run_with_stdin(
        &["flows".as_ref(), "-f".as_ref(), "jsonl".as_ref(), "-".as_ref()],
        &gzip(&bytes, None),
    );
    assert_eq!(text(&piped.stdout), text(&want.stdout));

    // Cut inside a record: the packets before it, a warning naming the offset in the
    // decompressed capture, exit 0.
    let cut = dir.join("cut-inside.pcap.gz");
    std::fs::write(&cut, gzip(&bytes, Some(bytes.len() / 2))).unwrap();
    let out = run(&["packets".as_ref(), cut.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("cut-inside.pcap.gz (decompressed): file truncated: record at byte offset"),
        "{err}"
    );

    // Cut between two records: the capture inside looks whole, the stream does not.
    let demo = std::fs::read(root().join("samples/demo.pcap")).unwrap();
    let first_two = 24 + (16 + 71) + (16 + 87);
    let cut = dir.join("cut-between.pcap.gz");
    std::fs::write(&cut, gzip(&demo, Some(first_two))).unwrap();
    let out = run(&["packets".as_ref(), cut.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 2);
    let err = text(&out.stderr);
    assert!(err.contains("the compressed stream ends early"), "{err}");

    // Not gzip after its magic: one line, exit 1.
    let junk = dir.join("junk.pcap.gz");
    // (Compression method 9: only 8, deflate, exists.)
    std::fs::write(&junk, [0x1f, 0x8b, 9, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3, 4]).unwrap();
    let out = run(&["packets".as_ref(), junk.as_os_str()]);
    fails_in_one_line(&out, &["junk.pcap.gz (decompressed): read error at byte offset 0"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bpf_reads_bsd_loopback_family_numbers_in_either_byte_order() {
    use flowscope::packet::LinkType;
    use flowscope::testkit::{flags, write_pcap, Frame};
    use flowscope::Timestamp;
    // Two TCP/IPv4 packets on BSD loopback (LINKTYPE_NULL), the family number (2)
    // written by a little-endian host and by a big-endian one, then UDP/IPv6 from a
    // big-endian macOS (family 30).
    let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let (a6, b6) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
    let tcp = || Frame::tcp(a, 40000, b, 80, flags::SYN, 1, 0).link(LinkType::NULL).build();
    let le = tcp();
    let mut be = tcp();
    be[..4].copy_from_slice(&2u32.to_be_bytes());
    let mut udp6 = Frame::udp(a6, 5353, b6, 5353).link(LinkType::NULL).build();
    udp6[..4].copy_from_slice(&30u32.to_be_bytes());
    let ts = |s| Timestamp::from_secs_micros(s, 0);
    let file = write_pcap(LinkType::NULL, 65535, &[(ts(1), le), (ts(2), be), (ts(3), udp6)]);
    let dir = std::env::temp_dir().join(format!("flowscope-null-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("null.pcap");
    std::fs::write(&path, file).unwrap();
    let kept = |expr: &str| -> Vec<String> {
        let out = run(&["packets".as_ref(), "--bpf".as_ref(), expr.as_ref(), path.as_os_str()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().map(|l| l.split(' ').next().unwrap().to_string()).collect()
    };
    assert_eq!(kept("ip and tcp port 80"), ["1", "2"]);
    assert_eq!(kept("ip6 and udp"), ["3"]);
    assert_eq!(kept("ip6 and tcp"), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}
