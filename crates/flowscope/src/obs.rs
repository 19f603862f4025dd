//! Observability: the metric vocabulary and tracing events, exactly as specified.
//!
//! Twelve metrics, all prefixed `flowscope_`. Label values are `&'static str` only, and a
//! flow key is never a label: the cardinality of every metric is fixed (at most five
//! series). Nothing is emitted per packet except `packets_unmatched_total`, a plain
//! counter increment; everything else changes at flow lifecycle points (start, end) or
//! on an anomaly.
//!
//! | constant | name | type | labels |
//! |---|---|---|---|
//! | [`METRIC_FLOWS_CREATED`] | `flowscope_flows_created_total` | counter | `l4` = tcp/udp/other |
//! | [`METRIC_FLOWS_ENDED`] | `flowscope_flows_ended_total` | counter | `reason` = fin/rst/idle/evicted/buffer_overflow |
//! | [`METRIC_FLOWS_ACTIVE`] | `flowscope_flows_active` | gauge | — |
//! | [`METRIC_PACKETS_UNMATCHED`] | `flowscope_packets_unmatched_total` | counter | — |
//! | [`METRIC_BYTES`] | `flowscope_bytes_total` | counter | `side` = initiator/responder |
//! | [`METRIC_FLOW_DURATION_SECONDS`] | `flowscope_flow_duration_seconds` | histogram | — |
//! | [`METRIC_FLOW_PACKETS`] | `flowscope_flow_packets` | histogram | — |
//! | [`METRIC_FLOW_BYTES`] | `flowscope_flow_bytes` | histogram | — |
//! | [`METRIC_ANOMALIES`] | `flowscope_anomalies_total` | counter | `kind` = buffer_overflow/ooo_segment/flow_table_eviction |
//! | [`METRIC_REASSEMBLY_DROPPED_OOO`] | `flowscope_reassembly_dropped_ooo_total` | counter | `side` |
//! | [`METRIC_REASSEMBLY_BYTES_DROPPED_OVERSIZE`] | `flowscope_reassembly_bytes_dropped_oversize_total` | counter | `side` |
//! | [`METRIC_REASSEMBLER_HIGH_WATERMARK`] | `flowscope_reassembler_high_watermark_bytes` | histogram | `side` |
//!
//! With feature `metrics` the values go to the [`metrics`](https://docs.rs/metrics)
//! facade (install any recorder: Prometheus, OpenTelemetry, ...); handles are registered
//! once when a tracker or driver is built, so each update is an atomic add. With feature
//! `tracing`, target `flowscope.flow` gets an INFO event when a flow starts (field `l4`)
//! and ends (`l4`, `reason`, `packets`, `bytes`), and target `flowscope.anomaly` a WARN
//! event per anomaly (`kind`). With both features off, every hook below is an empty
//! `#[inline(always)]` function and neither crate is in the dependency graph.

#[cfg(feature = "reassembler")]
use crate::event::{AnomalyKind, FlowSide};
use crate::event::{EndReason, FlowStats};
use crate::extract::L4Proto;

/// New flows, by `l4` (`tcp`, `udp`, `other`: ICMP counts as other). Incremented when a
/// packet creates a flow.
pub const METRIC_FLOWS_CREATED: &str = "flowscope_flows_created_total";
/// Ended flows, by `reason` (`fin`, `rst`, `idle`, `evicted`, `buffer_overflow`).
/// Incremented for every `FlowEvent::Ended`.
pub const METRIC_FLOWS_ENDED: &str = "flowscope_flows_ended_total";
/// Live flows. Goes up when a flow is created and down when it ends (evictions, idle
/// expiry, `finish` and aborts included), so it equals the tracker's `flow_count()` at
/// every moment.
pub const METRIC_FLOWS_ACTIVE: &str = "flowscope_flows_active";
/// Packets the extractor could not key (any `Unmatched` reason). Incremented per such
/// packet.
pub const METRIC_PACKETS_UNMATCHED: &str = "flowscope_packets_unmatched_total";
/// Link-layer bytes of ended flows, by `side` (`initiator`, `responder`): increased by
/// each ended flow's per-side L2 bytes when it ends.
pub const METRIC_BYTES: &str = "flowscope_bytes_total";
/// Duration of each ended flow, first packet to last, in seconds. One observation per
/// ended flow.
pub const METRIC_FLOW_DURATION_SECONDS: &str = "flowscope_flow_duration_seconds";
/// Packets (both sides) of each ended flow. One observation per ended flow.
pub const METRIC_FLOW_PACKETS: &str = "flowscope_flow_packets";
/// Link-layer bytes (both sides) of each ended flow. One observation per ended flow.
pub const METRIC_FLOW_BYTES: &str = "flowscope_flow_bytes";
/// Anomalies the driver reported, by `kind` (`buffer_overflow`, `ooo_segment`,
/// `flow_table_eviction`). Incremented for every anomaly the driver emits (anomaly
/// emission on).
pub const METRIC_ANOMALIES: &str = "flowscope_anomalies_total";
/// Segments reassembly dropped as too far ahead, by `side`. Increased as they are
/// dropped.
pub const METRIC_REASSEMBLY_DROPPED_OOO: &str = "flowscope_reassembly_dropped_ooo_total";
/// Bytes reassembly discarded at a buffer cap, by `side`. Increased as they are
/// discarded.
pub const METRIC_REASSEMBLY_BYTES_DROPPED_OVERSIZE: &str =
    "flowscope_reassembly_bytes_dropped_oversize_total";
/// Peak out-of-order bytes buffered for one side of a flow, by `side`. One observation
/// per side of each ended TCP flow that carried data.
pub const METRIC_REASSEMBLER_HIGH_WATERMARK: &str = "flowscope_reassembler_high_watermark_bytes";

/// Every metric name, for exporters that want to pre-register or check them.
pub const ALL_METRICS: [&str; 12] = [
    METRIC_FLOWS_CREATED,
    METRIC_FLOWS_ENDED,
    METRIC_FLOWS_ACTIVE,
    METRIC_PACKETS_UNMATCHED,
    METRIC_BYTES,
    METRIC_FLOW_DURATION_SECONDS,
    METRIC_FLOW_PACKETS,
    METRIC_FLOW_BYTES,
    METRIC_ANOMALIES,
    METRIC_REASSEMBLY_DROPPED_OOO,
    METRIC_REASSEMBLY_BYTES_DROPPED_OVERSIZE,
    METRIC_REASSEMBLER_HIGH_WATERMARK,
];

/// The `l4` label value: `tcp`, `udp`, or `other` (ICMP included).
pub const fn l4_label(l4: L4Proto) -> &'static str {
    match l4 {
        L4Proto::Tcp => "tcp",
        L4Proto::Udp => "udp",
        _ => "other",
    }
}

/// Describe every metric (help text and unit) to the installed recorder. Call once
/// after installing it (the CLI does); without feature `metrics`, does nothing.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
        describe_counter!(
            METRIC_FLOWS_CREATED,
            Unit::Count,
            "New flows, by transport (tcp/udp/other)"
        );
        describe_counter!(METRIC_FLOWS_ENDED, Unit::Count, "Ended flows, by end reason");
        describe_gauge!(METRIC_FLOWS_ACTIVE, Unit::Count, "Live flows in the table");
        describe_counter!(
            METRIC_PACKETS_UNMATCHED,
            Unit::Count,
            "Packets that could not be keyed to a flow"
        );
        describe_counter!(METRIC_BYTES, Unit::Bytes, "Link-layer bytes of ended flows, by side");
        describe_histogram!(METRIC_FLOW_DURATION_SECONDS, Unit::Seconds, "Duration of ended flows");
        describe_histogram!(METRIC_FLOW_PACKETS, Unit::Count, "Packets per ended flow");
        describe_histogram!(METRIC_FLOW_BYTES, Unit::Bytes, "Link-layer bytes per ended flow");
        describe_counter!(METRIC_ANOMALIES, Unit::Count, "Anomalies, by kind");
        describe_counter!(
            METRIC_REASSEMBLY_DROPPED_OOO,
            Unit::Count,
            "Segments dropped as too far out of order, by side"
        );
        describe_counter!(
            METRIC_REASSEMBLY_BYTES_DROPPED_OVERSIZE,
            Unit::Bytes,
            "Bytes discarded at a reassembly cap, by side"
        );
        describe_histogram!(
            METRIC_REASSEMBLER_HIGH_WATERMARK,
            Unit::Bytes,
            "Peak out-of-order bytes buffered per flow side"
        );
    }
}

/// The hooks the tracker and driver call. A zero-sized no-op without the features.
#[derive(Debug)]
pub(crate) struct Obs {
    #[cfg(feature = "metrics")]
    m: handles::Handles,
}

impl Obs {
    pub(crate) fn new() -> Self {
        Obs {
            #[cfg(feature = "metrics")]
            m: handles::Handles::new(),
        }
    }

    /// A flow was created.
    #[inline(always)]
    pub(crate) fn flow_created(&self, l4: L4Proto) {
        #[cfg(feature = "metrics")]
        {
            self.m.created[l4_index(l4)].increment(1);
            self.m.active.increment(1.0);
        }
        #[cfg(feature = "tracing")]
        tracing::info!(target: "flowscope.flow", l4 = l4_label(l4), "flow started");
        let _ = l4;
    }

    /// A flow ended (reported once, whatever the reason).
    #[inline(always)]
    pub(crate) fn flow_ended(&self, l4: L4Proto, reason: EndReason, stats: &FlowStats) {
        #[cfg(feature = "metrics")]
        {
            let m = &self.m;
            m.ended[reason_index(reason)].increment(1);
            m.active.decrement(1.0);
            m.bytes[0].increment(stats.initiator.l2_bytes);
            m.bytes[1].increment(stats.responder.l2_bytes);
            let duration = stats.last_ts().saturating_duration_since(stats.first_ts());
            m.duration.record(duration.as_secs_f64());
            m.packets.record(stats.packets() as f64);
            m.flow_bytes.record(stats.l2_bytes() as f64);
        }
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "flowscope.flow",
            l4 = l4_label(l4),
            reason = reason.as_str(),
            packets = stats.packets(),
            bytes = stats.l2_bytes(),
            "flow ended"
        );
        let _ = (l4, reason, stats);
    }

    /// A packet could not be keyed.
    #[inline(always)]
    pub(crate) fn unmatched(&self) {
        #[cfg(feature = "metrics")]
        self.m.unmatched.increment(1);
    }

    /// The driver emitted an anomaly.
    #[cfg(feature = "reassembler")]
    #[inline(always)]
    pub(crate) fn anomaly(&self, kind: AnomalyKind) {
        #[cfg(feature = "metrics")]
        self.m.anomalies[anomaly_index(kind)].increment(1);
        #[cfg(feature = "tracing")]
        tracing::warn!(target: "flowscope.anomaly", kind = kind.as_str(), "anomaly");
        let _ = kind;
    }

    /// Reassembly dropped segments (too far ahead) or bytes (at a cap) for a side.
    #[cfg(feature = "reassembler")]
    #[inline(always)]
    pub(crate) fn reassembly_dropped(
        &self,
        side: FlowSide,
        ooo_segments: u64,
        oversize_bytes: u64,
    ) {
        #[cfg(feature = "metrics")]
        {
            if ooo_segments > 0 {
                self.m.dropped_ooo[side.index()].increment(ooo_segments);
            }
            if oversize_bytes > 0 {
                self.m.dropped_oversize[side.index()].increment(oversize_bytes);
            }
        }
        let _ = (side, ooo_segments, oversize_bytes);
    }

    /// A side of an ended TCP flow peaked at `bytes` buffered.
    #[cfg(feature = "reassembler")]
    #[inline(always)]
    pub(crate) fn high_watermark(&self, side: FlowSide, bytes: u64) {
        #[cfg(feature = "metrics")]
        self.m.high_watermark[side.index()].record(bytes as f64);
        let _ = (side, bytes);
    }
}

#[cfg(feature = "metrics")]
const fn l4_index(l4: L4Proto) -> usize {
    match l4 {
        L4Proto::Tcp => 0,
        L4Proto::Udp => 1,
        _ => 2,
    }
}

#[cfg(feature = "metrics")]
const fn reason_index(r: EndReason) -> usize {
    match r {
        EndReason::Fin => 0,
        EndReason::Rst => 1,
        EndReason::Idle => 2,
        EndReason::Evicted => 3,
        EndReason::BufferOverflow => 4,
    }
}

#[cfg(all(feature = "metrics", feature = "reassembler"))]
const fn anomaly_index(k: AnomalyKind) -> usize {
    match k {
        AnomalyKind::BufferOverflow => 0,
        AnomalyKind::OutOfOrderSegment => 1,
        AnomalyKind::FlowTableEviction => 2,
    }
}

/// Metric handles, registered once (each update is then an atomic operation).
#[cfg(feature = "metrics")]
mod handles {
    use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

    use super::*;

    #[derive(Debug)]
    pub(super) struct Handles {
        pub(super) created: [Counter; 3],
        pub(super) ended: [Counter; 5],
        pub(super) active: Gauge,
        pub(super) unmatched: Counter,
        pub(super) bytes: [Counter; 2],
        pub(super) duration: Histogram,
        pub(super) packets: Histogram,
        pub(super) flow_bytes: Histogram,
        // Registered (so exporters show the family) but only updated by the driver.
        #[cfg_attr(not(feature = "reassembler"), allow(dead_code))]
        pub(super) anomalies: [Counter; 3],
        // Registered (so exporters show the family) but only updated by the driver.
        #[cfg_attr(not(feature = "reassembler"), allow(dead_code))]
        pub(super) dropped_ooo: [Counter; 2],
        // Registered (so exporters show the family) but only updated by the driver.
        #[cfg_attr(not(feature = "reassembler"), allow(dead_code))]
        pub(super) dropped_oversize: [Counter; 2],
        // Registered (so exporters show the family) but only updated by the driver.
        #[cfg_attr(not(feature = "reassembler"), allow(dead_code))]
        pub(super) high_watermark: [Histogram; 2],
    }

    impl Handles {
        pub(super) fn new() -> Self {
            let sides = ["initiator", "responder"];
            Handles {
                created: ["tcp", "udp", "other"]
                    .map(|l4| counter!(METRIC_FLOWS_CREATED, "l4" => l4)),
                ended: ["fin", "rst", "idle", "evicted", "buffer_overflow"]
                    .map(|r| counter!(METRIC_FLOWS_ENDED, "reason" => r)),
                active: gauge!(METRIC_FLOWS_ACTIVE),
                unmatched: counter!(METRIC_PACKETS_UNMATCHED),
                bytes: sides.map(|s| counter!(METRIC_BYTES, "side" => s)),
                duration: histogram!(METRIC_FLOW_DURATION_SECONDS),
                packets: histogram!(METRIC_FLOW_PACKETS),
                flow_bytes: histogram!(METRIC_FLOW_BYTES),
                anomalies: ["buffer_overflow", "ooo_segment", "flow_table_eviction"]
                    .map(|k| counter!(METRIC_ANOMALIES, "kind" => k)),
                dropped_ooo: sides.map(|s| counter!(METRIC_REASSEMBLY_DROPPED_OOO, "side" => s)),
                dropped_oversize: sides
                    .map(|s| counter!(METRIC_REASSEMBLY_BYTES_DROPPED_OVERSIZE, "side" => s)),
                high_watermark: sides
                    .map(|s| histogram!(METRIC_REASSEMBLER_HIGH_WATERMARK, "side" => s)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AnomalyKind, FlowSide};

    #[test]
    fn names_are_the_specification() {
        assert!(ALL_METRICS.iter().all(|m| m.starts_with("flowscope_")));
        let mut sorted = ALL_METRICS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 12);
        assert_eq!(l4_label(L4Proto::Icmp), "other");
        assert_eq!(EndReason::BufferOverflow.as_str(), "buffer_overflow");
        assert_eq!(AnomalyKind::OutOfOrderSegment.as_str(), "ooo_segment");
        assert_eq!(FlowSide::Responder.as_str(), "responder");
    }
}
