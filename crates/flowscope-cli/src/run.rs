//! The tracking loop the `flows`, `streams`, `stats` and `live` commands share.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use flowscope::driver::{DriverEvent, DriverSink, FlowDriver};
use flowscope::event::{AnomalyKind, FlowEvent, FlowSide};
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::packet::{LinkType, PacketView};
use flowscope::pcap::PcapPacket;
use flowscope::tracker::{Disposition, FlowId, TrackerStats, MAX_LISTED_LAYERS};
use flowscope::Timestamp;

use crate::input::{for_each_batch, Kept, Progress, ReadTotals, READ_BATCH};
use crate::live::{capture, LiveInput, LiveOpts};
use crate::metrics::Metrics;
use crate::options::{FileArgs, TrackOpts};
use crate::record::{ConnRecord, FlowMeta};

/// Where packets come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// Capture files, read in order as one capture, and their filter.
    Files(&'a FileArgs),
    /// A live interface, until `stop` is set.
    Live(&'a LiveOpts, &'a AtomicBool),
}

/// What the commands receive.
pub(crate) enum Event<'a> {
    /// A flow started; `serial` numbers flows in creation order (as in its uid).
    Started { key: FiveTupleKey, serial: u64 },
    /// A flow ended.
    Ended(&'a ConnRecord, FiveTupleKey),
    /// A live flow's interim record (`--active-timeout`).
    Interim(&'a ConnRecord),
    /// In-order stream bytes.
    Data { key: FiveTupleKey, side: FlowSide, bytes: &'a [u8] },
    /// Skipped stream bytes.
    Gap { key: FiveTupleKey, side: FlowSide, offset: u64, len: u64 },
    /// An anomaly.
    Anomaly(AnomalyKind),
    /// Live capture: a second (or so) has passed; a good time to flush outputs.
    Tick,
}

/// What a run saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) read: ReadTotals,
    pub(crate) tracker: TrackerStats,
}

/// Turns driver events into the commands' events and keeps the first error `handle`
/// returns (the driver's sinks cannot fail).
struct Emit<H> {
    handle: H,
    /// The error to report; taken by whoever reports it.
    error: Option<anyhow::Error>,
    /// After the first error, `handle` is not called again.
    failed: bool,
}

impl<H: FnMut(Event<'_>) -> Result<()>> Emit<H> {
    fn send(&mut self, ev: Event<'_>) {
        if !self.failed {
            if let Err(e) = (self.handle)(ev) {
                self.failed = true;
                self.error = Some(e);
            }
        }
    }
}

impl<H: FnMut(Event<'_>) -> Result<()>> DriverSink<FiveTupleKey, FlowMeta> for Emit<H> {
    fn event(&mut self, e: DriverEvent<'_, FiveTupleKey, FlowMeta>) {
        match e {
            DriverEvent::Flow(FlowEvent::Started { key, serial, .. }) => {
                self.send(Event::Started { key, serial });
            }
            DriverEvent::Flow(ended @ FlowEvent::Ended { .. }) => {
                let Some(snap) = ended.as_snapshot() else { return };
                let FlowEvent::Ended { reason, state, .. } = ended else { return };
                let rec = ConnRecord::new(&snap, Some(reason), state);
                self.send(Event::Ended(&rec, snap.key));
            }
            DriverEvent::Flow(FlowEvent::Anomaly { kind, .. }) => self.send(Event::Anomaly(kind)),
            DriverEvent::Data { key, side, bytes, .. } => {
                self.send(Event::Data { key, side, bytes })
            }
            DriverEvent::Gap { key, side, offset, len } => {
                self.send(Event::Gap { key, side, offset, len })
            }
            _ => {}
        }
    }
}

/// The driver and where its events go.
struct Tracking<H> {
    driver: FlowDriver<FiveTuple, FlowMeta>,
    emit: Emit<H>,
    active_timeout: Option<Duration>,
}

impl<H: FnMut(Event<'_>) -> Result<()>> Tracking<H> {
    fn packet(&mut self, view: &PacketView<'_>) -> Result<()> {
        let disposition = self.driver.handle_packet(view, &mut self.emit);
        if let Some(every) = self.active_timeout {
            if let Disposition::Tracked { flow, created: false, .. } = disposition {
                self.interim(flow, view.ts, every);
            }
            // The flows inside tunnels are due their interim records too. (One the
            // packet created is not due yet: its first falls `every` after it.)
            let mut inner = [FlowId(0); MAX_LISTED_LAYERS];
            let layers = self.driver.tunnel_flows();
            let n = layers.len().min(inner.len());
            inner[..n].copy_from_slice(&layers[..n]);
            for &flow in &inner[..n] {
                self.interim(flow, view.ts, every);
            }
        }
        self.emit.error.take().map_or(Ok(()), Err)
    }

    /// A batch of packets: through `handle_batch`, which overlaps the flow table's cache
    /// misses once the table outgrows the caches. Interim records are due between two
    /// packets, so with `--active-timeout` the packets go one at a time.
    fn batch(&mut self, batch: &Kept<'_>) -> Result<()> {
        if self.active_timeout.is_some() {
            return batch.iter().try_for_each(|p| self.packet(&p.view()));
        }
        let mut views = [PacketView::new(Timestamp::ZERO, LinkType::ETHERNET, &[]); READ_BATCH];
        // The whole batch apart: the filtered walk cost every packet 9 instructions
        // (callgrind, the CLI on the merged capture) when nothing was filtered.
        let n = match batch.all() {
            Some(all) => fill_views(all.iter(), &mut views),
            None => fill_views(batch.iter(), &mut views),
        };
        self.driver.handle_batch(&views[..n], &mut self.emit, |_| {});
        self.emit.error.take().map_or(Ok(()), Err)
    }

    /// Write a flow's interim record if one is due at `now`, and set when the next is.
    fn interim(&mut self, flow: FlowId, now: Timestamp, every: Duration) {
        let Some(meta) = self.driver.state_mut(flow) else { return };
        if now < meta.next_interim {
            return;
        }
        // The next one is due at the first interval boundary after `now` (a flow quiet
        // for several intervals gets one record, not one per interval missed).
        let step = every.as_nanos().max(1) as u64;
        let behind = now.as_nanos() - meta.next_interim.as_nanos();
        meta.next_interim = Timestamp::from_nanos(
            meta.next_interim.as_nanos().saturating_add((behind / step + 1).saturating_mul(step)),
        );
        let meta = *meta;
        if let Some(s) = self.driver.snapshot(flow) {
            let rec = ConnRecord::new(&s, None, meta);
            self.emit.send(Event::Interim(&rec));
        }
    }

    fn tick(&mut self, now: Timestamp) -> Result<()> {
        self.driver.advance(now, &mut self.emit);
        self.emit.send(Event::Tick);
        self.emit.error.take().map_or(Ok(()), Err)
    }
}

/// `views` from `packets`, as many as both hold; returns how many.
fn fill_views<'a>(
    packets: impl Iterator<Item = PcapPacket<'a>>,
    views: &mut [PacketView<'a>; READ_BATCH],
) -> usize {
    let mut n = 0;
    for (slot, p) in views.iter_mut().zip(packets) {
        *slot = p.view();
        n += 1;
    }
    n
}

/// Run the driver over the source; `handle` gets every event, in order.
pub(crate) fn run(
    source: Source<'_>,
    opts: &TrackOpts,
    handle: impl FnMut(Event<'_>) -> Result<()>,
) -> Result<Summary> {
    let config = opts.config()?;
    let active_timeout = opts.active_timeout()?;
    // Metrics handles bind at construction, so the recorder goes in first.
    let listen = match source {
        Source::Live(live, _) => live.metrics_listen,
        Source::Files(_) => None,
    };
    let metrics =
        (opts.metrics.is_some() || listen.is_some()).then(Metrics::install).transpose()?;
    if let (Some(m), Some(addr)) = (&metrics, listen) {
        m.serve(addr)?;
    }
    let extractor = FiveTuple::new().with_vlan_in_key(opts.vlan_in_key);
    let every = active_timeout.unwrap_or(Duration::ZERO);
    // Per-flow state from the packet that made the flow (flows inside tunnels too): the
    // VLAN it was first seen on, and when its first interim record is due.
    let driver = FlowDriver::with_state_from(extractor, config, move |ex, ts| FlowMeta {
        vlan: ex.headers.vlan.outer(),
        next_interim: ts.saturating_add(every),
    })
    .with_emit_anomalies(true);
    let mut t =
        Tracking { driver, emit: Emit { handle, error: None, failed: false }, active_timeout };
    let read = match source {
        Source::Files(files) => {
            for_each_batch(files, opts.quiet, Progress::Allowed, |batch| t.batch(batch))
        }
        Source::Live(live, stop) => capture(live, stop, |input| match input {
            LiveInput::Packet(view) => t.packet(&view),
            LiveInput::Tick(now) => {
                if let Some(m) = &metrics {
                    m.upkeep();
                }
                t.tick(now)
            }
        }),
    };
    // Even when reading failed, the flows seen so far are reported before the error.
    t.driver.finish(&mut t.emit);
    if let Some(e) = t.emit.error.take() {
        return Err(e);
    }
    let read = read?;
    if let (Some(m), Some(path)) = (&metrics, &opts.metrics) {
        m.write(path)?;
    }
    Ok(Summary { read, tracker: *t.driver.tracker_stats() })
}
