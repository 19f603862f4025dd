//! The tracking loop the `flows`, `streams` and `stats` commands share.

use anyhow::Result;
use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::event::{AnomalyKind, FlowEvent, FlowSide};
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::packet;
use flowscope::tracker::{Disposition, TrackerStats};

use crate::input::{for_each_packet, Progress, ReadTotals};
use crate::metrics::MetricsFile;
use crate::options::TrackOpts;
use crate::record::{ConnRecord, FlowMeta};

/// What the commands receive.
pub(crate) enum Event<'a> {
    /// A flow started; `ordinal` numbers flows in creation order (as in its uid).
    Started { key: FiveTupleKey, ordinal: u64 },
    /// A flow ended.
    Ended(&'a ConnRecord, FiveTupleKey),
    /// In-order stream bytes.
    Data { key: FiveTupleKey, side: FlowSide, bytes: &'a [u8] },
    /// Skipped stream bytes.
    Gap { key: FiveTupleKey, side: FlowSide, offset: u64, len: u64 },
    /// An anomaly.
    Anomaly(AnomalyKind),
}

/// What a run saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) read: ReadTotals,
    pub(crate) tracker: TrackerStats,
}

/// Run the driver over the inputs; `handle` gets every event, in order.
pub(crate) fn run(
    opts: &TrackOpts,
    mut handle: impl FnMut(Event<'_>) -> Result<()>,
) -> Result<Summary> {
    let config = opts.config()?;
    // Metrics handles bind at construction, so the recorder goes in first.
    let metrics = opts.metrics.as_deref().map(MetricsFile::install).transpose()?;
    // Flows are numbered in creation order; the number seeds the flow's uid.
    let mut next_ordinal = 0u64;
    let extractor = FiveTuple::new().with_vlan_in_key(opts.vlan_in_key);
    let mut driver: FlowDriver<FiveTuple, FlowMeta> =
        FlowDriver::with_state(extractor, config, move |_| {
            let ordinal = next_ordinal;
            next_ordinal += 1;
            FlowMeta { ordinal, vlan: None }
        })
        .with_emit_anomalies(true);
    let uid_seed = 0x666c_6f77_7363_6f70; // fixed: uids are deterministic per input
    let mut started = 0u64;
    let mut error: Option<anyhow::Error> = None;
    let mut sink = |e: DriverEvent<'_, FiveTupleKey, FlowMeta>| {
        if error.is_some() {
            return;
        }
        let rec;
        let ev = match e {
            DriverEvent::Flow(FlowEvent::Started { key, .. }) => {
                started += 1;
                Event::Started { key, ordinal: started - 1 }
            }
            DriverEvent::Flow(FlowEvent::Ended {
                key,
                reason,
                l4,
                initiator,
                stats,
                conn_state,
                history,
                state,
                ..
            }) => {
                rec = ConnRecord::new(
                    key, initiator, l4, stats, conn_state, history, reason, state, uid_seed,
                );
                Event::Ended(&rec, key)
            }
            DriverEvent::Flow(FlowEvent::Anomaly { kind, .. }) => Event::Anomaly(kind),
            DriverEvent::Data { key, side, bytes, .. } => Event::Data { key, side, bytes },
            DriverEvent::Gap { key, side, offset, len } => Event::Gap { key, side, offset, len },
            _ => return,
        };
        if let Err(err) = handle(ev) {
            error = Some(err);
        }
    };
    let read = for_each_packet(&opts.files, opts.quiet, Progress::Allowed, |p| {
        let view = p.view();
        if let Disposition::Tracked { flow, created: true, .. } =
            driver.handle_packet(&view, &mut sink)
        {
            // The VLAN a flow was first seen on (decoded again once per flow).
            if let (Some(meta), Ok(h)) = (driver.state_mut(flow), packet::decode(&view)) {
                meta.vlan = h.vlan.outer();
            }
        }
        Ok(())
    });
    // Even when reading failed, the flows seen so far are reported before the error.
    driver.finish(&mut sink);
    if let Some(e) = error {
        return Err(e);
    }
    let read = read?;
    if let Some(m) = metrics {
        m.write()?;
    }
    Ok(Summary { read, tracker: *driver.tracker_stats() })
}
