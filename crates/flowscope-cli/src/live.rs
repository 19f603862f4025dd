//! `flowscope live`: packets from a network interface through libpcap.
//!
//! The library has no clock; this is where one is read. Every half second (with or
//! without packets) the loop hands the wall-clock time to the driver so idle flows end
//! when traffic stops, and copies libpcap's capture counters into the metrics.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use flowscope::packet::{LinkType, PacketView};
use flowscope::Timestamp;

use crate::input::ReadTotals;

/// Capture counters from libpcap's statistics, under the library's metric prefix.
pub(crate) const METRIC_CAPTURE_RECEIVED: &str = "flowscope_capture_received_packets_total";
/// Packets the kernel dropped because the capture buffer was full.
pub(crate) const METRIC_CAPTURE_DROPPED: &str = "flowscope_capture_dropped_packets_total";
/// Packets the interface or its driver dropped.
pub(crate) const METRIC_CAPTURE_IF_DROPPED: &str =
    "flowscope_capture_interface_dropped_packets_total";

/// How often the clock is handed to the driver.
const TICK: Duration = Duration::from_millis(500);
/// How long libpcap may hold packets before handing them over.
const READ_TIMEOUT_MS: i32 = 100;
/// How long one wait for packets may block (so ticks and signals are seen promptly).
const WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
pub(crate) struct LiveOpts {
    /// Network interface to capture on.
    #[arg(short, long, value_name = "IFACE")]
    pub(crate) interface: String,
    /// Capture filter, in tcpdump's (BPF) syntax.
    #[arg(long, value_name = "EXPR")]
    pub(crate) bpf: Option<String>,
    /// Bytes captured per packet.
    #[arg(long, value_name = "BYTES", default_value_t = 262_144)]
    pub(crate) snaplen: i32,
    /// Put the interface in promiscuous mode.
    #[arg(long)]
    pub(crate) promisc: bool,
    /// The kernel's capture buffer, in bytes (libpcap's default when not given).
    #[arg(long, value_name = "BYTES")]
    pub(crate) buffer_size: Option<i32>,
    /// Serve the metrics in Prometheus text format at http://ADDR:PORT/metrics while
    /// capturing (e.g. 127.0.0.1:9477).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) metrics_listen: Option<SocketAddr>,
}

/// What the capture loop hands out.
pub(crate) enum LiveInput<'a> {
    /// A packet.
    Packet(PacketView<'a>),
    /// The wall-clock time, at least once a second.
    Tick(Timestamp),
}

fn wall_clock() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Capture until `stop` is set (SIGINT/SIGTERM) or `each` fails.
pub(crate) fn capture(
    opts: &LiveOpts,
    stop: &AtomicBool,
    mut each: impl FnMut(LiveInput<'_>) -> Result<()>,
) -> Result<ReadTotals> {
    let iface = &opts.interface;
    let mut inactive = pcap::Capture::from_device(iface.as_str())
        .with_context(|| format!("live capture on {iface}"))?
        .snaplen(opts.snaplen)
        .promisc(opts.promisc)
        .timeout(READ_TIMEOUT_MS)
        .immediate_mode(true);
    if let Some(bytes) = opts.buffer_size {
        inactive = inactive.buffer_size(bytes);
    }
    // Non-blocking, with our own wait below: in immediate mode libpcap's read timeout
    // does not return control while the interface is silent, so ticks and signals
    // would wait for the next packet.
    let mut cap = inactive
        .open()
        .and_then(|c| c.setnonblock())
        .with_context(|| format!("live capture on {iface}"))?;
    if let Some(expr) = &opts.bpf {
        cap.filter(expr, true).with_context(|| format!("capture filter {expr:?}"))?;
    }
    let link = LinkType(cap.get_datalink().0 as u32);
    if !link.is_supported() {
        bail!("live capture on {iface}: link type {} is not one flowscope decodes", link.0);
    }
    metrics::describe_counter!(METRIC_CAPTURE_RECEIVED, "Packets libpcap received.");
    metrics::describe_counter!(
        METRIC_CAPTURE_DROPPED,
        "Packets the kernel dropped for lack of buffer space."
    );
    metrics::describe_counter!(
        METRIC_CAPTURE_IF_DROPPED,
        "Packets the interface or its driver dropped."
    );
    let received = metrics::counter!(METRIC_CAPTURE_RECEIVED);
    let dropped = metrics::counter!(METRIC_CAPTURE_DROPPED);
    let if_dropped = metrics::counter!(METRIC_CAPTURE_IF_DROPPED);
    let mut totals = ReadTotals::default();
    let mut last_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match cap.next_packet() {
            Ok(p) => {
                let tv = p.header.ts;
                let ts = Timestamp::from_nanos(
                    (tv.tv_sec as u64).saturating_mul(1_000_000_000)
                        + (tv.tv_usec as u64).saturating_mul(1000),
                );
                totals.packets += 1;
                totals.bytes += u64::from(p.header.len);
                totals.first_ts.get_or_insert(ts);
                totals.last_ts = Some(totals.last_ts.map_or(ts, |t| t.max(ts)));
                let view = PacketView::new(ts, link, p.data).with_orig_len(p.header.len);
                each(LiveInput::Packet(view))?;
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Nothing waiting: sleep until the capture is readable or the wait ends.
                let wait = rustix::event::Timespec { tv_sec: 0, tv_nsec: WAIT.as_nanos() as i64 };
                let mut fds = [rustix::event::PollFd::new(&cap, rustix::event::PollFlags::IN)];
                match rustix::event::poll(&mut fds, Some(&wait)) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("live capture on {iface}: poll"))
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("live capture on {iface}")),
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            if let Ok(s) = cap.stats() {
                received.absolute(u64::from(s.received));
                dropped.absolute(u64::from(s.dropped));
                if_dropped.absolute(u64::from(s.if_dropped));
            }
            each(LiveInput::Tick(wall_clock()))?;
        }
    }
    if let Ok(s) = cap.stats() {
        received.absolute(u64::from(s.received));
        dropped.absolute(u64::from(s.dropped));
        if_dropped.absolute(u64::from(s.if_dropped));
    }
    Ok(totals)
}
