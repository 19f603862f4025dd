//! `flowscope live` end to end: a network namespace joined to this one by a veth pair,
//! flowscope capturing on this side, a client written here running in the namespace
//! (this test binary, re-run there), a server written here on this side. Needs root (or
//! CAP_NET_ADMIN and CAP_NET_RAW) and iproute2; without them it says so and skips.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENT_ENV: &str = "FLOWSCOPE_LIVE_TEST_CLIENT";
const REQUEST: &[u8] = b"hello from the namespace"; // 24 bytes
const RESPONSE: &[u8] = b"hello back"; // 10 bytes
const DATAGRAMS: usize = 3;
const PING: &[u8] = b"ping-ping!"; // 10 bytes
const PONG: &[u8] = b"pong"; // 4 bytes

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("iproute2's ip")
}

/// A namespace and a veth pair, removed on drop.
struct Net {
    ns: String,
    host_if: String,
    host: Ipv4Addr,
    peer: Ipv4Addr,
}

impl Net {
    fn create() -> Result<Net, String> {
        let id = std::process::id();
        let ns = format!("fsl{id}");
        let (host_if, peer_if) = (format!("fsl{id}a"), format!("fsl{id}b"));
        let subnet = (id % 250) as u8;
        let host = Ipv4Addr::new(10, 231, subnet, 1);
        let peer = Ipv4Addr::new(10, 231, subnet, 2);
        let out = ip(&["netns", "add", &ns]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let net = Net { ns: ns.clone(), host_if: host_if.clone(), host, peer };
        let steps: Vec<Vec<String>> = vec![
            vec!["link", "add", &host_if, "type", "veth", "peer", "name", &peer_if],
            vec!["link", "set", &peer_if, "netns", &ns],
            vec!["addr", "add", &format!("{host}/24"), "dev", &host_if],
            vec!["link", "set", &host_if, "up"],
            vec!["netns", "exec", &ns, "ip", "addr", "add", &format!("{peer}/24"), "dev", &peer_if],
            vec!["netns", "exec", &ns, "ip", "link", "set", &peer_if, "up"],
            vec!["netns", "exec", &ns, "ip", "link", "set", "lo", "up"],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        for step in steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            let out = ip(&args);
            if !out.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// Kill the capture if the test fails before stopping it.
struct Capture(Child);

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: flowscope\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

/// The value of a sample line `name{labels} value` (or `name value`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn live_capture_end_to_end() {
    let net = match Net::create() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("SKIPPED live_capture_end_to_end: cannot create a network namespace ({e}); run as root with iproute2");
            return;
        }
    };
    let tcp = TcpListener::bind((net.host, 0)).unwrap();
    let udp = UdpSocket::bind((net.host, 0)).unwrap();
    let (tcp_port, udp_port) = (tcp.local_addr().unwrap().port(), udp.local_addr().unwrap().port());
    let metrics_addr: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = std::env::temp_dir().join(format!("flowscope-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("flows.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .args(["live", "-i", &net.host_if, "--bpf", "tcp or udp", "-o"])
        .arg(&out_path)
        .args(["--metrics-listen", &metrics_addr.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut capture = Capture(child);
    // Ready once the capture counters exist: they are registered after the interface
    // is open.
    let start = Instant::now();
    while !scrape(metrics_addr)
        .is_some_and(|t| t.contains("flowscope_capture_received_packets_total"))
    {
        assert!(start.elapsed() < Duration::from_secs(20), "flowscope live never became ready");
        if let Ok(Some(status)) = capture.0.try_wait() {
            let mut err = String::new();
            let _ = capture.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("flowscope live exited early ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The server side, in this namespace.
    let server = std::thread::spawn(move || {
        let (mut conn, _) = tcp.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        assert_eq!(got, REQUEST);
        conn.write_all(RESPONSE).unwrap();
        drop(conn);
        let mut buf = [0u8; 64];
        for _ in 0..DATAGRAMS {
            let (n, from) = udp.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], PING);
            udp.send_to(PONG, from).unwrap();
        }
    });
    // The client side, in the other namespace: this test binary, run there.
    let client = Command::new("ip")
        .args(["netns", "exec", &net.ns])
        .arg(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "live_test_client", "--nocapture"])
        .env(CLIENT_ENV, format!("{}:{tcp_port} {}:{udp_port}", net.host, net.host))
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "client failed: {}{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    server.join().unwrap();

    // A scrape while it runs: both flows are counted (the UDP one is still live).
    let start = Instant::now();
    let text = loop {
        let text = scrape(metrics_addr).expect("a scrape while capturing");
        let tcp = sample(&text, "flowscope_flows_created_total{l4=\"tcp\"}").unwrap_or(0.0);
        let udp = sample(&text, "flowscope_flows_created_total{l4=\"udp\"}").unwrap_or(0.0);
        // libpcap's counters are copied over about twice a second.
        let received = sample(&text, "flowscope_capture_received_packets_total").unwrap_or(0.0);
        if tcp >= 1.0 && udp >= 1.0 && received >= 6.0 {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "flows never counted:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(sample(&text, "flowscope_capture_dropped_packets_total"), Some(0.0));
    assert!(text.contains("# TYPE flowscope_flow_duration_seconds histogram"), "{text}");

    // SIGTERM: every live flow is ended and written, and the exit is clean.
    let pid = capture.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = capture.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    let _ = capture.0.stderr.take().unwrap().read_to_string(&mut err);
    assert!(status.success(), "exit {status}: {err}");

    let records: Vec<Value> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |proto: &str, port: u16| {
        records
            .iter()
            .find(|r| r["proto"] == proto && r["id.resp_p"] == port)
            .unwrap_or_else(|| panic!("no {proto} record to port {port} in {records:#?}"))
    };
    let t = find("tcp", tcp_port);
    assert_eq!(t["id.orig_h"], net.peer.to_string());
    assert_eq!(t["id.resp_h"], net.host.to_string());
    assert_eq!(t["conn_state"], "SF", "{t}");
    assert_eq!(t["orig_bytes"], REQUEST.len());
    assert_eq!(t["resp_bytes"], RESPONSE.len());
    assert_eq!(t["missed_bytes"], 0);
    // SYN, ACK, data, FIN at least from the client; SYN-ACK, data, FIN from the server.
    assert!(t["orig_pkts"].as_u64().unwrap() >= 4, "{t}");
    assert!(t["resp_pkts"].as_u64().unwrap() >= 3, "{t}");
    assert!(t["history"].as_str().unwrap().starts_with("ShAD"), "{t}");
    let u = find("udp", udp_port);
    assert_eq!(u["id.orig_h"], net.peer.to_string());
    assert_eq!(u["conn_state"], "SF", "{u}");
    assert_eq!(u["orig_pkts"], DATAGRAMS);
    assert_eq!(u["resp_pkts"], DATAGRAMS);
    assert_eq!(u["orig_bytes"], DATAGRAMS * PING.len());
    assert_eq!(u["resp_bytes"], DATAGRAMS * PONG.len());
    // Ended by the shutdown while still live.
    assert_eq!(u["end_reason"], "idle");
    let _ = std::fs::remove_dir_all(&dir);
    drop(net);
}

/// The client half of `live_capture_end_to_end`, run by that test inside its network
/// namespace (it has nothing to do anywhere else).
#[test]
#[ignore = "run by live_capture_end_to_end inside its network namespace"]
fn live_test_client() {
    let spec = std::env::var(CLIENT_ENV).expect("started by live_capture_end_to_end");
    let (tcp, udp) = spec.split_once(' ').unwrap();
    let (tcp, udp): (SocketAddr, SocketAddr) = (tcp.parse().unwrap(), udp.parse().unwrap());
    let mut conn = TcpStream::connect_timeout(&tcp, Duration::from_secs(5)).unwrap();
    conn.write_all(REQUEST).unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert_eq!(got, RESPONSE);
    drop(conn);
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..DATAGRAMS {
        sock.send_to(PING, udp).unwrap();
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], PONG);
    }
}

#[test]
fn a_missing_interface_is_a_one_line_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .args(["live", "-i", "flowscope-none0", "-o", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("flowscope: live capture on flowscope-none0: "), "{err}");
}
