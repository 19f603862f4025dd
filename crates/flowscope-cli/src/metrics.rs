//! The metric vocabulary in Prometheus text format: written to a file at exit
//! (`--metrics FILE`) and, for live capture, served over HTTP (`--metrics-listen`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use flowscope::obs;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub(crate) struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Install a Prometheus recorder with histogram buckets suited to each metric.
    pub(crate) fn install() -> Result<Self> {
        let bytes =
            [64.0, 512.0, 4096.0, 32768.0, 262_144.0, 1_048_576.0, 8_388_608.0, 67_108_864.0, 1e9];
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(obs::METRIC_FLOW_DURATION_SECONDS.into()),
                &[0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0],
            )?
            .set_buckets_for_metric(
                Matcher::Full(obs::METRIC_FLOW_PACKETS.into()),
                &[1.0, 2.0, 4.0, 10.0, 30.0, 100.0, 1e3, 1e4, 1e5, 1e6],
            )?
            .set_buckets_for_metric(Matcher::Full(obs::METRIC_FLOW_BYTES.into()), &bytes)?
            .set_buckets_for_metric(
                Matcher::Full(obs::METRIC_REASSEMBLER_HIGH_WATERMARK.into()),
                &bytes,
            )?
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        obs::describe();
        Ok(Metrics { handle })
    }

    /// Render and write the file.
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.handle.render())
            .with_context(|| format!("{}: cannot write the metrics file", path.display()))
    }

    /// Fold recorded histogram samples into their buckets (the recorder buffers them
    /// until asked); called about once a second while capturing.
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Serve `GET /metrics` on `addr` from a background thread for the life of the
    /// process. Binding happens here, so a busy or forbidden address is an error now.
    ///
    /// Hand-written rather than metrics-exporter-prometheus's `http-listener`: that
    /// feature brings a tokio runtime and hyper for one endpoint that answers a scrape
    /// every few seconds; this is a blocking accept loop on one thread.
    pub(crate) fn serve(&self, addr: SocketAddr) -> Result<()> {
        let listener =
            TcpListener::bind(addr).with_context(|| format!("--metrics-listen {addr}"))?;
        let handle = self.handle.clone();
        std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    // One scrape at a time; a client that stalls is cut off.
                    let _ = answer(conn, &handle);
                }
            })
            .context("cannot start the metrics thread")?;
        Ok(())
    }
}

/// Answer one HTTP/1.x request: the metrics for `GET /metrics`, 404 or 405 otherwise.
fn answer(mut conn: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    // Read the request head (bounded): only its first line matters.
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        (b"GET", b"/metrics") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", handle.render())
        }
        (b"GET", _) => ("404 Not Found", "text/plain", "not found; try /metrics\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n".into()),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}
