//! What the tracker reports: flow lifecycle events, end reasons, Zeek's connection states
//! and history strings, and per-flow statistics.

use core::fmt;

use crate::extract::{L4Proto, Orientation};
use crate::packet::TcpFlags;
use crate::time::Timestamp;

/// One side of a flow, named by role rather than by address order.
///
/// Complete by definition, so not `#[non_exhaustive]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FlowSide {
    /// The side that started the flow (Zeek's "originator").
    Initiator,
    /// The other side.
    Responder,
}

impl FlowSide {
    /// `initiator` / `responder`: the metric label values.
    pub const fn as_str(self) -> &'static str {
        match self {
            FlowSide::Initiator => "initiator",
            FlowSide::Responder => "responder",
        }
    }

    /// This side's index in a two-element per-side array: 0 for the initiator, 1 for
    /// the responder.
    #[inline]
    pub const fn index(self) -> usize {
        match self {
            FlowSide::Initiator => 0,
            FlowSide::Responder => 1,
        }
    }

    /// The side at `index` in a flow's per-side arrays, the inverse of
    /// [`index`](Self::index): 0 the initiator, else the responder.
    #[inline]
    pub(crate) const fn at(index: usize) -> FlowSide {
        if index == 0 {
            FlowSide::Initiator
        } else {
            FlowSide::Responder
        }
    }

    /// The other side.
    pub const fn flip(self) -> FlowSide {
        match self {
            FlowSide::Initiator => FlowSide::Responder,
            FlowSide::Responder => FlowSide::Initiator,
        }
    }
}

/// Why a flow ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// Reassembly hit its cap under `OverflowPolicy::DropFlow`.
    BufferOverflow,
    /// The table was full and this was the least recently active flow.
    Evicted,
    /// Both sides sent FIN, and the linger after it passed (or the 5-tuple was reused).
    Fin,
    /// No packets for the flow's idle timeout, or the input ended (`finish`) before the
    /// flow closed.
    Idle,
    /// A RST ended it, and the linger after it passed (or the 5-tuple was reused).
    Rst,
}

impl EndReason {
    /// The metric label value: `buffer_overflow`, `evicted`, `fin`, `idle`, `rst`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::BufferOverflow => "buffer_overflow",
            EndReason::Evicted => "evicted",
            EndReason::Fin => "fin",
            EndReason::Idle => "idle",
            EndReason::Rst => "rst",
        }
    }
}

/// Something unusual the driver saw, reported with
/// `FlowDriver::with_emit_anomalies(true)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnomalyKind {
    /// A side hit its reassembly buffer cap or the global one (under either policy).
    BufferOverflow,
    /// The table was full and a flow was evicted to make room.
    FlowTableEviction,
    /// A segment arrived ahead of a hole (buffered or dropped).
    OutOfOrderSegment,
}

impl AnomalyKind {
    /// The metric label value: `buffer_overflow`, `flow_table_eviction`, `ooo_segment`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::BufferOverflow => "buffer_overflow",
            AnomalyKind::FlowTableEviction => "flow_table_eviction",
            AnomalyKind::OutOfOrderSegment => "ooo_segment",
        }
    }
}

/// Zeek's `conn_state`, computed from the endpoint states as Zeek's `conn.log`
/// documentation defines it.
///
/// Variants follow the order of Zeek's documentation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnState {
    /// Connection attempt seen, no reply.
    S0,
    /// Connection established, not terminated.
    S1,
    /// Normal establishment and termination (UDP: both sides sent).
    Sf,
    /// Connection attempt rejected.
    Rej,
    /// Established, close attempt by the originator seen, no reply from the responder.
    S2,
    /// Established, close attempt by the responder seen, no reply from the originator.
    S3,
    /// Established, the originator aborted (sent a RST).
    Rsto,
    /// Established, the responder sent a RST.
    Rstr,
    /// The originator sent a SYN followed by a RST; no SYN-ACK from the responder.
    Rstos0,
    /// The responder sent a SYN-ACK followed by a RST; no SYN from the originator.
    Rstrh,
    /// The originator sent a SYN followed by a FIN; no SYN-ACK from the responder.
    Sh,
    /// The responder sent a SYN-ACK followed by a FIN; no SYN from the originator (UDP:
    /// only the responder sent).
    Shr,
    /// No SYN seen, just midstream traffic; and everything that fits nothing else.
    Oth,
}

impl ConnState {
    /// Zeek's spelling: `S0`, `S1`, `SF`, `REJ`, `S2`, `S3`, `RSTO`, `RSTR`, `RSTOS0`,
    /// `RSTRH`, `SH`, `SHR`, `OTH`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::Sf => "SF",
            ConnState::Rej => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::Rsto => "RSTO",
            ConnState::Rstr => "RSTR",
            ConnState::Rstos0 => "RSTOS0",
            ConnState::Rstrh => "RSTRH",
            ConnState::Sh => "SH",
            ConnState::Shr => "SHR",
            ConnState::Oth => "OTH",
        }
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many history letters a flow keeps. Zeek's alphabet records each event once per
/// side, except the logarithmically repeated ones (at 1, 10, 100, ... occurrences), so
/// real histories stay well below this; letters past it are dropped and counted in the
/// tracker's stats.
pub const HISTORY_CAP: usize = 24;

/// A Zeek `history` string: upper case for the originator, lower case for the responder.
///
/// Invariant: `len <= HISTORY_CAP` and `letters[..len]` is ASCII.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct History {
    letters: [u8; HISTORY_CAP],
    len: u8,
}

impl History {
    /// The letters as a string (empty when nothing was recorded; Zeek prints `-`).
    pub fn as_str(&self) -> &str {
        let bytes = self.letters.get(..usize::from(self.len)).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// Number of letters.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when no letter was recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append a letter; false (and nothing appended) when full.
    pub(crate) fn push(&mut self, c: u8) -> bool {
        match self.letters.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = c;
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "History({:?})", self.as_str())
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters for one side of a flow (what that side sent).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SideStats {
    /// Packets.
    pub packets: u64,
    /// Bytes on the wire including the link-layer header (frame lengths), tshark's unit.
    pub l2_bytes: u64,
    /// IP bytes: IPv4 total length, or 40 + IPv6 payload length (Zeek's `orig_ip_bytes`).
    pub ip_bytes: u64,
    /// Payload bytes, as Zeek's `orig_bytes`: for TCP the sequence space covered (highest
    /// sequence number sent or acknowledged, less the SYN and FIN octets), so
    /// retransmissions are not counted twice and acknowledged-but-unseen data is; for UDP
    /// and ICMP the sum of payload lengths; 0 for other protocols (as in Zeek).
    pub payload_bytes: u64,
    /// First packet from this side (zero if it sent none). A flow created by a packet
    /// with a bad checksum (see `FlowTrackerConfig::verify_checksums`) has that packet's
    /// time here and in `last_ts`, with `packets` still 0.
    pub first_ts: Timestamp,
    /// Last packet from this side (zero if it sent none).
    pub last_ts: Timestamp,
    /// Union of the TCP flags this side sent.
    pub tcp_flags: TcpFlags,
    /// TCP segments that carried payload wholly at or below data already seen.
    pub retransmits: u64,
    /// Bytes reassembly never saw (Zeek's `missed_bytes`; filled by the reassembler).
    pub missed_bytes: u64,
    /// Segments reassembly dropped as out of order beyond its window.
    pub dropped_ooo: u64,
    /// Bytes reassembly discarded at its buffer cap.
    pub dropped_oversize_bytes: u64,
    /// Peak bytes reassembly held buffered for this side.
    pub high_watermark_bytes: u64,
    /// Segments whose bytes differed from bytes reassembly had received before at the
    /// same offsets (see `StreamStats::inconsistent_segments`).
    pub inconsistent_segments: u64,
}

/// The earlier start of a flow's two sides, each given as (packets, first time). A side
/// has a start when it sent a packet, or when its packet with a bad checksum created the
/// flow (time set, no packets); a side with neither does not count. The one rule for
/// [`FlowStats::first_ts`] and the tracker's timing of connection attempts.
#[inline]
pub(crate) fn earliest_start(a: (u64, Timestamp), b: (u64, Timestamp)) -> Timestamp {
    let started = |(packets, first): (u64, Timestamp)| packets > 0 || first != Timestamp::ZERO;
    match (started(a), started(b)) {
        (false, _) => b.1,
        (_, false) => a.1,
        _ => a.1.min(b.1),
    }
}

/// Statistics of a whole flow, by role.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// What the initiator (Zeek's originator) sent.
    pub initiator: SideStats,
    /// What the responder sent.
    pub responder: SideStats,
}

impl FlowStats {
    /// First packet of the flow.
    pub fn first_ts(&self) -> Timestamp {
        let (i, r) = (&self.initiator, &self.responder);
        earliest_start((i.packets, i.first_ts), (r.packets, r.first_ts))
    }

    /// Last packet of the flow.
    pub fn last_ts(&self) -> Timestamp {
        self.initiator.last_ts.max(self.responder.last_ts)
    }

    /// Packets both ways.
    pub fn packets(&self) -> u64 {
        self.initiator.packets + self.responder.packets
    }

    /// Link-layer bytes both ways.
    pub fn l2_bytes(&self) -> u64 {
        self.initiator.l2_bytes + self.responder.l2_bytes
    }

    /// The side's counters.
    pub fn side(&self, side: FlowSide) -> &SideStats {
        match side {
            FlowSide::Initiator => &self.initiator,
            FlowSide::Responder => &self.responder,
        }
    }
}

/// How many distinct parents [`TunnelParents`] holds.
pub const MAX_TUNNEL_PARENTS: usize = 4;

/// The flows a tunnelled flow was carried in: Zeek's `tunnel_parents`, as the parent
/// flows' serial numbers (see [`FlowEvent::Started`]).
///
/// Empty for a flow seen only outside tunnels. A flow can have several parents (a VXLAN
/// overlay whose two directions use different outer source ports, say); at most
/// [`MAX_TUNNEL_PARENTS`] distinct ones are kept, in the order first seen, and
/// [`TunnelParents::overflowed`] says more were seen.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelParents {
    serials: [u64; MAX_TUNNEL_PARENTS],
    len: u8,
    overflowed: bool,
}

impl TunnelParents {
    /// Record `serial` as a parent (no-op if it is one already).
    pub fn add(&mut self, serial: u64) {
        if self.iter().any(|s| s == serial) {
            return;
        }
        match self.serials.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = serial;
                self.len += 1;
            }
            None => self.overflowed = true,
        }
    }

    /// The parents' serials, in the order first seen.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.serials.iter().take(usize::from(self.len)).copied()
    }

    /// How many parents are held.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when the flow was never seen inside a tunnel.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when more than [`MAX_TUNNEL_PARENTS`] distinct parents were seen.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

/// A flow lifecycle event.
///
/// `K` is the extractor's key; `S` the per-flow user state, handed back when the flow
/// ends.
// `Ended` is much larger than the others (the stats of both sides); boxing it would put an
// allocation on every flow end, which the zero-allocation rule forbids.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowEvent<K, S = ()> {
    /// A packet created a new flow.
    Started {
        /// The flow key.
        key: K,
        /// The orientation of the initiator's packets relative to the key.
        initiator: Orientation,
        /// The orientation of the packet that created the flow (differs from
        /// `initiator` when the first packet came from the responder, e.g. a SYN-ACK).
        orientation: Orientation,
        /// Transport class.
        l4: L4Proto,
        /// Timestamp of the packet.
        ts: Timestamp,
        /// The flow's serial number: flows are numbered 0, 1, 2, ... in the order the
        /// tracker created them, never reused (a stable name for the flow, e.g. for a
        /// Zeek-style uid, and what [`TunnelParents`] refers to).
        serial: u64,
        /// The flow it arrived in, when its first packet was tunnelled (the parent's
        /// serial).
        parent: Option<u64>,
    },
    /// Both sides have now been seen taking part: the TCP handshake completed, or (TCP
    /// picked up mid-stream, UDP, other) both sides sent. At most once per flow.
    Established {
        /// The flow key.
        key: K,
        /// Timestamp of the packet that established it.
        ts: Timestamp,
    },
    /// The flow ended. Its slot is free before the event is delivered.
    Ended {
        /// The flow key.
        key: K,
        /// Why it ended.
        reason: EndReason,
        /// Transport class.
        l4: L4Proto,
        /// The orientation of the initiator's packets relative to the key.
        initiator: Orientation,
        /// Counters by role.
        stats: FlowStats,
        /// Zeek's `conn_state`.
        conn_state: ConnState,
        /// Zeek's `history`.
        history: History,
        /// The tracker clock when it ended (for idle expiry: the clock that expired it).
        ts: Timestamp,
        /// The serial number it got in `Started`.
        serial: u64,
        /// The flows it was carried in, if it was tunnelled.
        tunnel_parents: TunnelParents,
        /// The user state created when the flow started.
        state: S,
    },
    /// An anomaly (driver only, with anomaly emission on): at most one per flow, side
    /// and kind per packet.
    Anomaly {
        /// The flow it concerns.
        key: K,
        /// The side it concerns, when it concerns one.
        side: Option<FlowSide>,
        /// What happened.
        kind: AnomalyKind,
        /// The tracker clock.
        ts: Timestamp,
    },
}

/// Where events go. Implemented for `Vec<FlowEvent<K, S>>` (reuse one and clear it
/// between calls to keep steady state allocation-free) and for closures.
pub trait EventSink<K, S = ()> {
    /// Take one event.
    fn event(&mut self, event: FlowEvent<K, S>);
}

impl<K, S> EventSink<K, S> for Vec<FlowEvent<K, S>> {
    #[inline]
    fn event(&mut self, event: FlowEvent<K, S>) {
        self.push(event);
    }
}

impl<K, S, F: FnMut(FlowEvent<K, S>)> EventSink<K, S> for F {
    #[inline]
    fn event(&mut self, event: FlowEvent<K, S>) {
        self(event)
    }
}
