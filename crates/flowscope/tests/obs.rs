//! The metric vocabulary and the tracing events, asserted exactly over one scripted
//! scenario that fires every metric and every label value.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use flowscope::driver::{DriverEvent, FlowDriver};
use flowscope::event::{EndReason, FlowEvent};
use flowscope::extract::{FiveTuple, FiveTupleKey};
use flowscope::obs::*;
use flowscope::packet::{LinkType, PacketView};
use flowscope::testkit::{flags::*, Frame};
use flowscope::tracker::{FlowTrackerConfig, OverflowPolicy};
use flowscope::Timestamp;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

struct Run {
    driver: FlowDriver<FiveTuple>,
    now_us: u64,
    ended: Vec<(EndReason, u64, u64, u64)>, // reason, packets, l2 initiator, l2 responder
    anomalies: usize,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

impl Run {
    fn send(&mut self, f: Frame) {
        self.now_us += 1000;
        let frame = f.build();
        let view =
            PacketView::new(Timestamp::from_nanos(self.now_us * 1000), LinkType::ETHERNET, &frame);
        let (ended, anomalies) = (&mut self.ended, &mut self.anomalies);
        self.driver.handle_packet(&view, &mut |e: DriverEvent<'_, FiveTupleKey>| {
            record(ended, anomalies, e)
        });
    }

    fn finish(&mut self) {
        let (ended, anomalies) = (&mut self.ended, &mut self.anomalies);
        self.driver.finish(&mut |e: DriverEvent<'_, FiveTupleKey>| record(ended, anomalies, e));
    }

    fn tcp(&mut self, port: u16, from_client: bool, flags: u16, seq: u32, ack: u32, data: &[u8]) {
        let (c, s) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let f = if from_client {
            Frame::tcp(c, port, s, 80, flags, seq, ack)
        } else {
            Frame::tcp(s, 80, c, port, flags, seq, ack)
        };
        self.send(f.payload(data));
    }

    fn handshake(&mut self, port: u16) {
        self.tcp(port, true, SYN, 100, 0, b"");
        self.tcp(port, false, SYN_ACK, 500, 101, b"");
        self.tcp(port, true, ACK, 101, 501, b"");
    }
}

fn record(
    ended: &mut Vec<(EndReason, u64, u64, u64)>,
    anomalies: &mut usize,
    e: DriverEvent<'_, FiveTupleKey>,
) {
    match e {
        DriverEvent::Flow(FlowEvent::Ended { reason, stats, .. }) => ended.push((
            reason,
            stats.packets(),
            stats.initiator.l2_bytes,
            stats.responder.l2_bytes,
        )),
        DriverEvent::Flow(FlowEvent::Anomaly { .. }) => *anomalies += 1,
        _ => {}
    }
}

/// The scenario: every l4, every end reason, every anomaly kind, both sides.
fn scenario() -> Run {
    let cfg = FlowTrackerConfig::default()
        .with_max_flows(9)
        .with_max_buffer(16)
        .with_overflow_policy(OverflowPolicy::DropFlow);
    let mut r = Run {
        driver: FlowDriver::new(FiveTuple::new(), cfg).with_emit_anomalies(true),
        now_us: 1_000_000,
        ended: Vec::new(),
        anomalies: 0,
    };
    // Z: a UDP flow, the least recently active when the table fills: evicted.
    r.send(Frame::udp(ip("10.9.9.9"), 5000, ip("10.0.0.2"), 53).payload(b"z"));
    // A: TCP, closed by FINs.
    r.handshake(1001);
    r.tcp(1001, true, PSH_ACK, 101, 501, b"hello");
    r.tcp(1001, false, PSH_ACK, 501, 106, b"world!");
    r.tcp(1001, true, FIN_ACK, 106, 507, b"");
    r.tcp(1001, false, FIN_ACK, 507, 107, b"");
    // B: TCP, reset.
    r.handshake(1002);
    r.tcp(1002, false, RST_ACK, 501, 101, b"");
    // C: UDP both ways; D: ICMP echo (l4 "other").
    r.send(Frame::udp(ip("10.0.0.1"), 40000, ip("10.0.0.2"), 53).payload(b"q"));
    r.send(Frame::udp(ip("10.0.0.2"), 53, ip("10.0.0.1"), 40000).payload(b"answer"));
    r.send(Frame::icmp(ip("10.0.0.1"), ip("10.0.0.2"), 8, 0, [0, 1, 0, 1]));
    r.send(Frame::icmp(ip("10.0.0.2"), ip("10.0.0.1"), 0, 0, [0, 1, 0, 1]));
    // E: out of order both ways within the cap (watermarks 10 and 8).
    r.handshake(1005);
    r.tcp(1005, true, PSH_ACK, 111, 501, b"0123456789");
    r.tcp(1005, true, PSH_ACK, 101, 501, b"abcdefghij");
    r.tcp(1005, false, PSH_ACK, 509, 121, b"ABCDEFGH");
    r.tcp(1005, false, PSH_ACK, 501, 121, b"12345678");
    // F and G: beyond the 16-byte cap under DropFlow, one per side.
    r.handshake(1006);
    r.tcp(1006, true, PSH_ACK, 111, 501, &[b'x'; 20]);
    r.handshake(1007);
    r.tcp(1007, false, PSH_ACK, 511, 101, &[b'y'; 20]);
    // H: segments impossibly far ahead, one per side (dropped as out of order).
    r.handshake(1008);
    r.tcp(1008, true, PSH_ACK, 101 + (1 << 30) + 100, 501, b"far");
    r.tcp(1008, false, PSH_ACK, 501 + (1 << 30) + 100, 101, b"far");
    // A packet nobody can key.
    r.now_us += 1000;
    let junk = [0u8; 20];
    let view = PacketView::new(Timestamp::from_nanos(r.now_us * 1000), LinkType::ETHERNET, &junk);
    r.driver.handle_packet(&view, &mut |_e: DriverEvent<'_, FiveTupleKey>| {});
    // I: one more flow into the full table (nine slots: Z A B C D E F G H; the aborted
    // F and G still hold theirs): evicts Z, the least recently active.
    r.send(Frame::udp(ip("10.0.0.7"), 7, ip("10.0.0.8"), 8));
    r
}

type Values = BTreeMap<(String, Vec<(String, String)>), DebugValue>;

fn merge(a: &Values, b: &Values) -> Values {
    let copy = |v: &DebugValue| match v {
        DebugValue::Counter(x) => DebugValue::Counter(*x),
        DebugValue::Gauge(x) => DebugValue::Gauge(*x),
        DebugValue::Histogram(x) => DebugValue::Histogram(x.clone()),
    };
    let mut out: Values = a.iter().map(|(k, v)| (k.clone(), copy(v))).collect();
    for (k, v) in b {
        let merged = match (out.get(k), v) {
            (Some(DebugValue::Counter(x)), DebugValue::Counter(y)) => DebugValue::Counter(x + y),
            (Some(DebugValue::Gauge(x)), DebugValue::Gauge(y)) => {
                DebugValue::Gauge((x.into_inner() + y.into_inner()).into())
            }
            (Some(DebugValue::Histogram(x)), DebugValue::Histogram(y)) => {
                DebugValue::Histogram(x.iter().chain(y.iter()).copied().collect())
            }
            _ => copy(v),
        };
        out.insert(k.clone(), merged);
    }
    out
}

fn values(recorder: &DebuggingRecorder) -> Values {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(ck, _, _, v)| {
            let key = ck.key();
            let labels =
                key.labels().map(|l| (l.key().to_string(), l.value().to_string())).collect();
            ((key.name().to_string(), labels), v)
        })
        .collect()
}

fn counter(v: &Values, name: &str, label: Option<(&str, &str)>) -> u64 {
    let labels: Vec<(String, String)> =
        label.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match v.get(&(name.to_string(), labels)) {
        Some(DebugValue::Counter(c)) => *c,
        other => panic!("{name} {label:?}: {other:?}"),
    }
}

fn gauge(v: &Values, name: &str) -> f64 {
    match v.get(&(name.to_string(), vec![])) {
        Some(DebugValue::Gauge(g)) => g.into_inner(),
        other => panic!("{name}: {other:?}"),
    }
}

fn histogram(v: &Values, name: &str, label: Option<(&str, &str)>) -> Vec<f64> {
    let labels: Vec<(String, String)> =
        label.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match v.get(&(name.to_string(), labels)) {
        Some(DebugValue::Histogram(h)) => h.iter().map(|x| x.into_inner()).collect(),
        other => panic!("{name} {label:?}: {other:?}"),
    }
}

/// The two tests take turns. tracing caches each callsite's interest the first time it
/// fires; if the metrics test fires a callsite (no subscriber: interest "never") while
/// the tracing test is installing its scoped subscriber, that callsite can stay muted for
/// the tracing test. Running them one at a time removes the race.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn every_metric_and_label_with_exact_values() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let recorder = DebuggingRecorder::new();
    let (mid, end, run) = metrics::with_local_recorder(&recorder, || {
        let mut run = scenario();
        let mid = values(&recorder);
        let live = run.driver.tracker().flow_count();
        assert_eq!(gauge(&mid, METRIC_FLOWS_ACTIVE), live as f64, "gauge equals the live count");
        run.finish();
        (mid, values(&recorder), run)
    });
    // The debugging recorder's snapshots hold what changed since the previous one; add
    // the two up for the totals.
    let total = merge(&mid, &end);
    let v = &total;
    // Created by l4.
    assert_eq!(counter(v, METRIC_FLOWS_CREATED, Some(("l4", "tcp"))), 6);
    assert_eq!(counter(v, METRIC_FLOWS_CREATED, Some(("l4", "udp"))), 3);
    assert_eq!(counter(v, METRIC_FLOWS_CREATED, Some(("l4", "other"))), 1);
    // Ended by reason.
    let ended = |r| counter(v, METRIC_FLOWS_ENDED, Some(("reason", r)));
    assert_eq!(
        (ended("fin"), ended("rst"), ended("idle"), ended("evicted"), ended("buffer_overflow")),
        (1, 1, 5, 1, 2)
    );
    // created == ended + active, at the end and in the middle.
    assert_eq!(gauge(v, METRIC_FLOWS_ACTIVE), 0.0);
    let created = |v: &Values| {
        ["tcp", "udp", "other"]
            .iter()
            .map(|l| counter(v, METRIC_FLOWS_CREATED, Some(("l4", l))))
            .sum::<u64>()
    };
    let ended_total = |v: &Values| {
        ["fin", "rst", "idle", "evicted", "buffer_overflow"]
            .iter()
            .map(|r| counter(v, METRIC_FLOWS_ENDED, Some(("reason", r))))
            .sum::<u64>()
    };
    assert_eq!(created(v), ended_total(v));
    assert_eq!(created(&mid) as f64, ended_total(&mid) as f64 + gauge(&mid, METRIC_FLOWS_ACTIVE));
    // Unmatched packets.
    assert_eq!(counter(v, METRIC_PACKETS_UNMATCHED, None), 1);
    // Bytes per side == the ended flows' L2 bytes.
    let l2_init: u64 = run.ended.iter().map(|e| e.2).sum();
    let l2_resp: u64 = run.ended.iter().map(|e| e.3).sum();
    assert_eq!(counter(v, METRIC_BYTES, Some(("side", "initiator"))), l2_init);
    assert_eq!(counter(v, METRIC_BYTES, Some(("side", "responder"))), l2_resp);
    // One histogram observation per ended flow.
    assert_eq!(run.ended.len(), 10);
    assert_eq!(histogram(v, METRIC_FLOW_PACKETS, None).len(), 10);
    assert_eq!(
        histogram(v, METRIC_FLOW_BYTES, None).iter().sum::<f64>(),
        (l2_init + l2_resp) as f64
    );
    let mut packets: Vec<f64> = run.ended.iter().map(|e| e.1 as f64).collect();
    let mut seen = histogram(v, METRIC_FLOW_PACKETS, None);
    packets.sort_by(f64::total_cmp);
    seen.sort_by(f64::total_cmp);
    assert_eq!(seen, packets);
    assert_eq!(histogram(v, METRIC_FLOW_DURATION_SECONDS, None).len(), 10);
    // Anomalies by kind, equal to the events the driver emitted.
    let anomaly = |k| counter(v, METRIC_ANOMALIES, Some(("kind", k)));
    assert_eq!(anomaly("flow_table_eviction"), 1);
    assert_eq!(anomaly("buffer_overflow"), 2);
    assert_eq!(anomaly("ooo_segment"), 6); // E both sides, F, G, H both sides
    assert_eq!(
        anomaly("flow_table_eviction") + anomaly("buffer_overflow") + anomaly("ooo_segment"),
        run.anomalies as u64
    );
    // Reassembly drops, both sides.
    assert_eq!(counter(v, METRIC_REASSEMBLY_DROPPED_OOO, Some(("side", "initiator"))), 1);
    assert_eq!(counter(v, METRIC_REASSEMBLY_DROPPED_OOO, Some(("side", "responder"))), 1);
    assert_eq!(
        counter(v, METRIC_REASSEMBLY_BYTES_DROPPED_OVERSIZE, Some(("side", "initiator"))),
        20
    );
    assert_eq!(
        counter(v, METRIC_REASSEMBLY_BYTES_DROPPED_OVERSIZE, Some(("side", "responder"))),
        20
    );
    // High watermarks: one observation per side of each ended TCP flow with stream state.
    let init = histogram(v, METRIC_REASSEMBLER_HIGH_WATERMARK, Some(("side", "initiator")));
    let resp = histogram(v, METRIC_REASSEMBLER_HIGH_WATERMARK, Some(("side", "responder")));
    assert!(init.contains(&10.0) && resp.contains(&8.0), "{init:?} {resp:?}");
    assert_eq!(init.len(), resp.len());
    // Every name in the vocabulary was emitted.
    for name in ALL_METRICS {
        assert!(v.keys().any(|(n, _)| n == name), "{name} missing");
    }
    // And nothing outside it.
    assert!(v.keys().all(|(n, _)| ALL_METRICS.contains(&n.as_str())));
}

/// Tracing: targets, levels and fields.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
}

struct Collect(Arc<Mutex<Vec<Seen>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct V(BTreeMap<String, String>);
        impl tracing::field::Visit for V {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_string(), format!("{value:?}"));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_string(), value.to_string());
            }
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                self.0.insert(field.name().to_string(), value.to_string());
            }
        }
        let mut v = V(BTreeMap::new());
        event.record(&mut v);
        let meta = event.metadata();
        self.0.lock().unwrap().push(Seen {
            target: meta.target().to_string(),
            level: *meta.level(),
            fields: v.0,
        });
    }
}

#[test]
fn tracing_events_have_the_specified_targets_levels_and_fields() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use tracing_subscriber::layer::SubscriberExt;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Collect(seen.clone()));
    let run = tracing::subscriber::with_default(subscriber, || {
        let mut run = scenario();
        run.finish();
        run
    });
    let seen = seen.lock().unwrap();
    let flow: Vec<&Seen> = seen.iter().filter(|s| s.target == "flowscope.flow").collect();
    let anomaly: Vec<&Seen> = seen.iter().filter(|s| s.target == "flowscope.anomaly").collect();
    assert!(seen.iter().all(|s| s.target == "flowscope.flow" || s.target == "flowscope.anomaly"));
    let started: Vec<_> = flow.iter().filter(|s| !s.fields.contains_key("reason")).collect();
    let ended: Vec<_> = flow.iter().filter(|s| s.fields.contains_key("reason")).collect();
    assert_eq!(started.len(), 10);
    assert_eq!(ended.len(), 10);
    assert!(flow.iter().all(|s| s.level == tracing::Level::INFO));
    assert!(started.iter().all(|s| ["tcp", "udp", "other"].contains(&s.fields["l4"].as_str())));
    for e in &ended {
        for f in ["l4", "reason", "packets", "bytes"] {
            assert!(e.fields.contains_key(f), "{e:?}");
        }
    }
    let total_packets: u64 =
        ended.iter().map(|e| e.fields["packets"].parse::<u64>().unwrap()).sum();
    assert_eq!(total_packets, run.ended.iter().map(|e| e.1).sum::<u64>());
    assert_eq!(anomaly.len(), run.anomalies);
    assert!(anomaly
        .iter()
        .all(|s| s.level == tracing::Level::WARN && s.fields.contains_key("kind")));
}
