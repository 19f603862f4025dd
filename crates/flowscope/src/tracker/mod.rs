//! The flow tracker: packets in, flow lifecycle events out.
//!
//! [`FlowTracker`] keys each packet with a [`FlowExtractor`], finds or creates its flow
//! with one hash lookup, updates the flow's counters, TCP endpoint states and Zeek
//! history, and reports [`FlowEvent`]s to a caller-provided [`EventSink`].
//!
//! # Call order and time
//!
//! ```text
//! new -> (handle_packet | advance)* -> finish
//! ```
//!
//! Time comes only from packets: the tracker's clock is the largest timestamp seen (or
//! passed to [`FlowTracker::advance`]). A packet older than the clock updates its own flow
//! but does not move the clock back, and is counted in [`TrackerStats::late_packets`] —
//! unless it is older than the clock by more than the shortest idle timeout. Then the
//! capture's time has jumped backwards (files concatenated out of order, a sensor's clock
//! reset), every flow it touched would be expired on its next packet, and so the clock
//! follows it back instead ([`TrackerStats::clock_rewinds`]). Flows from before the jump
//! then end when time passes their deadline again, by eviction, or at `finish`.
//! Flows idle past their timeout end when the clock passes their deadline — on the next
//! packet, on `advance` (for live capture, when no packets come), or at `finish`.
//!
//! # Cost
//!
//! One hash lookup per packet; expiry and eviction take the heads of a handful of
//! intrusive lists ordered by last activity (one per timeout class), so they are O(1)
//! per flow ended and nothing ever scans the table. The slab's room for
//! [`FlowTrackerConfig::max_flows`] entries is reserved up front; the hash index starts
//! small and grows with the flows to about twice the most live at once, so it fits
//! the traffic rather than the cap: no allocation per packet in steady state (a
//! counting-allocator test holds this).

mod config;
mod frames;
mod index;
mod table;
pub(crate) mod tcp;

use core::fmt;
use core::net::IpAddr;
use core::time::Duration;

pub use config::{
    FlowTrackerConfig, OverflowPolicy, OverlapPolicy, DEFAULT_TCP_SERVER_PORTS,
    DEFAULT_UDP_SERVER_PORTS,
};
pub use tcp::EndpointState;

use crate::defrag::{Datagram, DefragStats, Defragmenter, Push};
use crate::event::{
    ConnState, EndReason, EventSink, FlowEvent, FlowSide, FlowStats, History, SideStats,
    TunnelParents,
};
use crate::extract::{Extracted, FlowExtractor, L4Proto, Orientation, Unmatched};
use crate::packet::checksum::{self, Verdict};
use crate::packet::{self, Headers, PacketView, TcpFlags, Transport, TunnelKind};
use crate::time::Timestamp;
pub(crate) use frames::Frames;
use table::Table;
use tcp::{HistoryRec, Segment, TcpEndpoint};

/// Packets keyed and looked up together by [`FlowTracker::handle_batch`] before any of
/// them is handled.
pub const BATCH: usize = 8;

/// What the extractor made of a packet.
pub(crate) type Keyed<K> = Result<Extracted<K>, Unmatched>;

/// How a keyed packet came to `FlowTracker::track`: one value rather than a hint and a
/// parent argument, so that `track` keeps to six arguments, all passed in registers.
#[derive(Copy, Clone)]
enum Via {
    /// A frame or a datagram rebuilt from fragments, with the slot an earlier lookup
    /// found for its key (see `FlowTracker::warm`), tried before the index, or
    /// `NO_HINT`.
    Frame(u32),
    /// Found inside a tunnel carried by the flow with this serial number.
    Tunnel(u64),
}

/// Live flow entries (bytes) from which [`FlowTracker::handle_batch`] looks a group's
/// flows up before handling them (see `worth_warming`): 4 MiB, about 16,000 tracker
/// entries, past the 1-2 MiB of L2 that current x86 cores have. Until 2026-11-28 it was
/// 32 MiB, chosen when the look-ahead read each flow's index bucket and entry in turn.
const WARM_ABOVE_BYTES: usize = 4 << 20;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// No slot hint for `FlowTracker::track`: look the key up in the index.
const NO_HINT: u32 = table::NIL;

/// One group's look-ahead (`FlowTracker::look_ahead`): what each packet keyed to and the
/// slot hint for each. Made once per `handle_batch` call and filled in place for each
/// group: returned by value instead, a group's results (about 180 bytes a packet) were
/// copied four times more, 62 instructions a packet (`memcpy`; callgrind, 16,384 flows
/// live, 16 packets each, 2026-11-28: 219.2M -> 202.9M for 262,144 packets).
struct Ahead<K> {
    keyed: [Keyed<K>; BATCH],
    hints: [u32; BATCH],
}

impl<K> Ahead<K> {
    /// Room for a group; the placeholder values are overwritten before they are read.
    fn new() -> Self {
        Ahead { keyed: core::array::from_fn(|_| Err(Unmatched::Fragment)), hints: [NO_HINT; BATCH] }
    }
}

/// Timeout classes, one intrusive list each.
const CLASS_TCP: u8 = 0;
const CLASS_TCP_ATTEMPT: u8 = 1;
const CLASS_TCP_LINGER: u8 = 2;
const CLASS_UDP: u8 = 3;
const CLASS_OTHER: u8 = 4;

/// A live flow's handle, valid until the next call that can end flows
/// (`handle_packet`, `advance`, `finish`): slots are reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowId(pub u32);

/// What the tracker did with a packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// The packet belongs to a flow.
    Tracked {
        /// The flow.
        flow: FlowId,
        /// Which side sent it.
        side: FlowSide,
        /// This packet created the flow.
        created: bool,
    },
    /// The extractor could not key it.
    Unmatched(Unmatched),
    /// An IP fragment, taken by the defragmenter: held until its datagram is whole (or
    /// dropped with it; see [`TrackerStats::defrag`]). The fragment that completes a
    /// datagram gets the datagram's disposition instead.
    Fragment,
    /// The packet belongs to a flow that was ended by policy (see
    /// [`FlowTracker::abort`]) and is absorbed until that connection closes or goes idle.
    Dropped {
        /// The absorbing flow.
        flow: FlowId,
        /// Which side sent it.
        side: FlowSide,
    },
    /// A checksum was wrong ([`FlowTrackerConfig::verify_checksums`]): the packet is in
    /// no flow's counters.
    BadChecksum {
        /// The flow a bad transport checksum was marked in (`C` in its history; the
        /// packet created it if `created`); `None` for a bad IPv4 header checksum, which
        /// drops the packet before it is keyed.
        flow: Option<FlowId>,
        /// The packet created `flow`.
        created: bool,
    },
}

/// A live flow as it stands now: what its `Ended` event would say if it ended, without
/// the end reason (for interim records of long flows).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowSnapshot<K> {
    /// The flow key.
    pub key: K,
    /// Transport protocol.
    pub l4: L4Proto,
    /// Which key endpoint initiated the flow.
    pub initiator: Orientation,
    /// Counters so far (the reassembly fields are filled by
    /// `FlowDriver::snapshot`).
    pub stats: FlowStats,
    /// Zeek's connection state so far.
    pub conn_state: ConnState,
    /// Zeek's history so far.
    pub history: History,
    /// The flow's serial number (see [`FlowEvent::Started`]).
    pub serial: u64,
    /// The flows it was carried in, if it was tunnelled.
    pub tunnel_parents: TunnelParents,
}

impl<K: Copy, S> FlowEvent<K, S> {
    /// For an `Ended` event, the flow as it stood when it ended, in the shape of a
    /// [`FlowSnapshot`] (so code that renders live and ended flows can share one path);
    /// `None` for other events.
    pub fn as_snapshot(&self) -> Option<FlowSnapshot<K>> {
        match self {
            FlowEvent::Ended {
                key,
                l4,
                initiator,
                stats,
                conn_state,
                history,
                serial,
                tunnel_parents,
                ..
            } => Some(FlowSnapshot {
                key: *key,
                l4: *l4,
                initiator: *initiator,
                stats: *stats,
                conn_state: *conn_state,
                history: *history,
                serial: *serial,
                tunnel_parents: *tunnel_parents,
            }),
            _ => None,
        }
    }
}

/// Decapsulation outcomes: one count per tunnelled packet found, by tunnel kind, and
/// one per tunnel header that could not be read.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelCounts {
    /// Inner packets handed to the extractor, by [`TunnelKind::index`].
    pub by_kind: [u64; TunnelKind::ALL.len()],
    /// Tunnel headers cut short or contradicting themselves (the outer packet is still
    /// tracked; the inner one is not).
    pub malformed: u64,
    /// Tunnels nested deeper than [`TunnelConfig::max_depth`](crate::packet::TunnelConfig)
    /// (the innermost packet followed is tracked; the one inside it is not).
    pub too_deep: u64,
}

impl TunnelCounts {
    /// Inner packets decapsulated, all kinds.
    pub fn decapsulated(&self) -> u64 {
        self.by_kind.iter().sum()
    }

    /// Inner packets decapsulated from tunnels of `kind`.
    pub fn of(&self, kind: TunnelKind) -> u64 {
        self.by_kind.get(kind.index()).copied().unwrap_or(0)
    }
}

/// Unmatched packets by reason.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct UnmatchedCounts {
    /// IP fragments without a transport header.
    pub fragment: u64,
    /// Malformed or truncated headers.
    pub malformed: u64,
    /// No link-layer addresses (MAC-keyed extractors).
    pub no_mac_address: u64,
    /// Not IP.
    pub not_ip: u64,
    /// Link types the decoder does not read.
    pub unsupported_link_type: u64,
}

impl UnmatchedCounts {
    /// All unmatched packets.
    pub fn total(&self) -> u64 {
        self.fragment
            + self.malformed
            + self.no_mac_address
            + self.not_ip
            + self.unsupported_link_type
    }

    fn count(&mut self, u: &Unmatched) {
        match u {
            Unmatched::Fragment => self.fragment += 1,
            Unmatched::Malformed(_) => self.malformed += 1,
            Unmatched::NoMacAddress => self.no_mac_address += 1,
            Unmatched::NotIp { .. } => self.not_ip += 1,
            Unmatched::UnsupportedLinkType(_) => self.unsupported_link_type += 1,
            // A future reason is still counted once, as malformed.
            #[allow(unreachable_patterns)]
            _ => self.malformed += 1,
        }
    }
}

/// Flows ended, by reason.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct EndedCounts {
    /// `EndReason::BufferOverflow`.
    pub buffer_overflow: u64,
    /// `EndReason::Evicted`.
    pub evicted: u64,
    /// `EndReason::Fin`.
    pub fin: u64,
    /// `EndReason::Idle`.
    pub idle: u64,
    /// `EndReason::Rst`.
    pub rst: u64,
}

impl EndedCounts {
    /// All ended flows.
    pub fn total(&self) -> u64 {
        self.buffer_overflow + self.evicted + self.fin + self.idle + self.rst
    }

    fn count(&mut self, r: EndReason) {
        match r {
            EndReason::BufferOverflow => self.buffer_overflow += 1,
            EndReason::Evicted => self.evicted += 1,
            EndReason::Fin => self.fin += 1,
            EndReason::Idle => self.idle += 1,
            EndReason::Rst => self.rst += 1,
        }
    }
}

/// Counters the tracker keeps about itself.
///
/// Invariants, checked by tests on every shared capture: `packets +
/// tunnels.decapsulated() == tracked + unmatched.total() + dropped + bad_checksum +
/// defrag.absorbed`
/// (the packet ledger: every frame, and every packet found inside a tunnel, has exactly
/// one outcome; a datagram rebuilt from fragments counts once, as the fragment that
/// completed it), and
/// `flows_created == flows_ended.total() + flow_count()` (aborted flows that still absorb
/// packets are ended, not live).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Packets handed to `handle_packet`.
    pub packets: u64,
    /// Packets that belong to a flow.
    pub tracked: u64,
    /// Packets the extractor could not key, by reason.
    pub unmatched: UnmatchedCounts,
    /// Packets absorbed by flows ended by policy ([`FlowTracker::abort`]).
    pub dropped: u64,
    /// Packets with a wrong checksum ([`FlowTrackerConfig::verify_checksums`]).
    pub bad_checksum: u64,
    /// Flows created.
    pub flows_created: u64,
    /// Flows ended, by reason.
    pub flows_ended: EndedCounts,
    /// Packets older than the tracker clock when they arrived.
    pub late_packets: u64,
    /// Late packets so late (beyond the shortest idle timeout) that the clock was set
    /// back to their time; also counted in `late_packets`.
    pub clock_rewinds: u64,
    /// TCP flows ended early because a new SYN reused their 5-tuple.
    pub port_reuses: u64,
    /// History letters dropped because a flow's history was full.
    pub history_overflow: u64,
    /// Packets found inside tunnels, and tunnel headers that could not be read.
    pub tunnels: TunnelCounts,
    /// IP defragmentation.
    pub defrag: DefragStats,
}

impl TrackerStats {
    /// The ledger's left side: frames handed in plus packets found inside tunnels.
    pub fn inputs(&self) -> u64 {
        self.packets + self.tunnels.decapsulated()
    }

    /// The ledger's right side: every outcome (tracked, unmatched, dropped, a bad
    /// checksum, or taken by the defragmenter without completing a datagram). Always
    /// equals [`inputs`](Self::inputs).
    pub fn outcomes(&self) -> u64 {
        self.tracked
            + self.unmatched.total()
            + self.dropped
            + self.bad_checksum
            + self.defrag.absorbed
    }
}

/// Counters for one side, as stored in the table. (Payload bytes, flags and TCP state
/// live in the side's [`TcpEndpoint`].)
#[derive(Copy, Clone, Debug, Default)]
struct Side {
    packets: u64,
    l2_bytes: u64,
    ip_bytes: u64,
    first: Timestamp,
    last: Timestamp,
}

/// One flow as stored in the table. Index 0 of the arrays is the initiator.
#[derive(Debug)]
struct Flow<S> {
    l4: L4Proto,
    initiator: Orientation,
    established: bool,
    sides: [Side; 2],
    tcp: [TcpEndpoint; 2],
    hist: HistoryRec,
    /// The flow's serial number (`TrackerStats::flows_created` when it was created).
    /// Inside the entry since `HistoryRec::seen` shrank to two bytes made room in the
    /// 256-byte slot; beside the slab it cost 8 bytes more per flow.
    serial: u64,
    // Invariant: `Some` while the flow is live; taken when it ends.
    state: Option<S>,
}

impl<S> Flow<S> {
    fn last_activity(&self) -> Timestamp {
        self.sides[0].last.max(self.sides[1].last)
    }

    fn first_activity(&self) -> Timestamp {
        let [a, b] = &self.sides;
        crate::event::earliest_start((a.packets, a.first), (b.packets, b.first))
    }

    fn class(&self) -> u8 {
        match self.l4 {
            L4Proto::Tcp => {
                use EndpointState::*;
                let (o, r) = (self.tcp[0].state, self.tcp[1].state);
                let rst = self.tcp[0].rst_seen() || self.tcp[1].rst_seen();
                if rst || (o == Closed && r == Closed) {
                    CLASS_TCP_LINGER
                } else if self.established
                    || matches!(o, Partial | Established | Closed)
                    || matches!(r, Partial | Established | Closed)
                {
                    CLASS_TCP
                } else {
                    CLASS_TCP_ATTEMPT
                }
            }
            L4Proto::Udp => CLASS_UDP,
            _ => CLASS_OTHER,
        }
    }

    /// Why the flow ends if it ends now without outside cause: both FINs make it `Fin`
    /// (a RST after them is teardown noise), otherwise any RST makes it `Rst`.
    fn natural_end(&self) -> EndReason {
        use EndpointState::*;
        if self.l4 == L4Proto::Tcp {
            let (o, r) = (self.tcp[0].state, self.tcp[1].state);
            if o == Closed && r == Closed {
                return EndReason::Fin;
            }
            if self.tcp[0].rst_seen() || self.tcp[1].rst_seen() {
                return EndReason::Rst;
            }
        }
        EndReason::Idle
    }

    fn conn_state(&self) -> ConnState {
        match self.l4 {
            L4Proto::Tcp => tcp::conn_state(&self.tcp[0], &self.tcp[1], &self.hist.letters),
            L4Proto::Udp => match (self.sides[0].packets > 0, self.sides[1].packets > 0) {
                (true, true) => ConnState::Sf,
                (true, false) => ConnState::S0,
                (false, true) => ConnState::Shr,
                (false, false) => ConnState::Oth,
            },
            _ => ConnState::Oth,
        }
    }

    fn stats(&self) -> FlowStats {
        let side = |i: usize| {
            let (s, t) = (&self.sides[i], &self.tcp[i]);
            SideStats {
                packets: s.packets,
                l2_bytes: s.l2_bytes,
                ip_bytes: s.ip_bytes,
                payload_bytes: if self.l4 == L4Proto::Tcp { t.payload_bytes() } else { t.last_rel },
                first_ts: s.first,
                last_ts: s.last,
                tcp_flags: TcpFlags(t.flags),
                retransmits: u64::from(t.retransmits),
                ..SideStats::default()
            }
        };
        FlowStats { initiator: side(0), responder: side(1) }
    }
}

/// The innermost TCP segment of a tunnelled packet, for the driver to reassemble.
// Without the driver (feature `reassembler`) only the datagram is read.
#[cfg_attr(not(feature = "reassembler"), allow(dead_code))]
pub(crate) struct InnerTcp {
    pub(crate) flow: FlowId,
    pub(crate) side: FlowSide,
    pub(crate) tcp: crate::packet::TcpHeader,
    pub(crate) headers: Headers,
    /// When the segment's offsets refer to a datagram rebuilt from fragments.
    pub(crate) datagram: Option<Datagram>,
}

/// A packet found inside a tunnel ([`FlowTracker::decapsulate`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct TunnelLayer<K> {
    /// What it keyed to.
    pub extracted: Result<Extracted<K>, Unmatched>,
    /// What the tracker did with it.
    pub disposition: Disposition,
    /// When the inner packet was the fragment that completed a datagram: the rebuilt
    /// datagram, which `extracted`'s offsets refer to (instead of the outer frame).
    /// Hand it back with [`FlowTracker::recycle_datagram`].
    pub datagram: Option<Datagram>,
}

/// Creates a flow's user state from its key.
type NewState<K, S> = Box<dyn FnMut(&Extracted<K>, Timestamp) -> S>;

/// Tracks flows: see the [module docs](self) for the call order and the time rules.
///
/// `E` keys packets; `S` is per-flow user state, created when a flow starts (by
/// `S::default()` or the closure given to [`FlowTracker::with_state`]) and handed back in
/// [`FlowEvent::Ended`].
pub struct FlowTracker<E: FlowExtractor, S = ()> {
    extractor: E,
    config: FlowTrackerConfig,
    table: Table<E::Key, Flow<S>>,
    new_state: NewState<E::Key, S>,
    clock: Timestamp,
    stats: TrackerStats,
    /// Each class's timeout in nanoseconds (a `Duration` costs a conversion on every
    /// packet's expiry check).
    timeouts: [u64; table::CLASSES],
    /// The whole second `clock` is in, and the nanosecond the next one starts: every
    /// packet reads the one and compares with the other, and dividing by 10^9 for them
    /// each time was three divisions a packet (`set_clock` keeps them). The second is
    /// what list stamps count in (wraps in 2106; stamps are only compared for equality
    /// and ordered by the monotonic clock).
    clock_second: u32,
    second_end: u64,
    /// How far behind the clock a packet may be before the clock follows it back: the
    /// shortest timeout, past which a flow made by that packet would expire at once.
    rewind_after: Duration,
    /// Aborted flows still in the table, absorbing packets.
    tombstones: usize,
    /// Tunnel parents of the live flows that were tunnelled, by slot. Kept beside the
    /// table rather than in every entry: most flows are never tunnelled, and 40 bytes more
    /// per entry would cost every flow (entries here are removed when the flow ends, so
    /// this never holds more than the table).
    parents: hashbrown::HashMap<u32, TunnelParents, foldhash::fast::FixedState>,
    defrag: Defragmenter,
    obs: crate::obs::Obs,
    /// `WARM_ABOVE_BYTES`; a field so tests can make every batch look its flows up
    /// ahead.
    pub(crate) warm_above: usize,
    /// The flows found inside tunnels in the last frame (`tunnel_flows`).
    layers: Layers,
}

/// The most tunnel layers [`FlowTracker::tunnel_flows`] lists for one packet (the
/// default [`TunnelConfig::max_depth`](crate::packet::TunnelConfig::max_depth) is 4).
pub const MAX_LISTED_LAYERS: usize = 8;

/// The flows tracked inside tunnels for one frame, outermost first.
///
/// Invariant: `len <= MAX_LISTED_LAYERS`; the list belongs to the frame that made
/// `TrackerStats::packets` equal `frame` (so it needs no clearing per packet).
#[derive(Copy, Clone, Debug)]
struct Layers {
    flows: [FlowId; MAX_LISTED_LAYERS],
    len: u8,
    frame: u64,
}

impl Layers {
    const EMPTY: Layers = Layers { flows: [FlowId(0); MAX_LISTED_LAYERS], len: 0, frame: 0 };

    fn push(&mut self, frame: u64, flow: FlowId) {
        if self.frame != frame {
            *self = Layers { frame, ..Layers::EMPTY };
        }
        if let Some(slot) = self.flows.get_mut(usize::from(self.len)) {
            *slot = flow;
            self.len += 1;
        }
    }

    fn of(&self, frame: u64) -> &[FlowId] {
        match self.frame == frame {
            true => self.flows.get(..usize::from(self.len)).unwrap_or(&[]),
            false => &[],
        }
    }
}

impl<E: FlowExtractor, S> fmt::Debug for FlowTracker<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowTracker")
            .field("flows", &self.table.len())
            .field("clock", &self.clock)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<E: FlowExtractor, S: Default + 'static> FlowTracker<E, S> {
    /// A tracker whose per-flow state starts as `S::default()`.
    pub fn new(extractor: E, config: FlowTrackerConfig) -> Self {
        Self::with_state(extractor, config, |_| S::default())
    }
}

impl<E: FlowExtractor, S> FlowTracker<E, S> {
    /// A tracker that creates each flow's state with `new_state(&key)`.
    pub fn with_state(
        extractor: E,
        config: FlowTrackerConfig,
        mut new_state: impl FnMut(&E::Key) -> S + 'static,
    ) -> Self {
        Self::with_state_from(extractor, config, move |ex, _| new_state(&ex.key))
    }

    /// A tracker that creates each flow's state from the packet that created it (its
    /// key, decoded headers and timestamp), for state that depends on more than the key:
    /// the VLAN a flow was first seen on, when it started. Called once per flow, for
    /// flows found inside tunnels too.
    pub fn with_state_from(
        extractor: E,
        config: FlowTrackerConfig,
        new_state: impl FnMut(&Extracted<E::Key>, Timestamp) -> S + 'static,
    ) -> Self {
        let mut timeouts = [Duration::ZERO; table::CLASSES];
        timeouts[CLASS_TCP as usize] = config.tcp_idle;
        timeouts[CLASS_TCP_ATTEMPT as usize] = config.tcp_attempt_idle;
        timeouts[CLASS_TCP_LINGER as usize] = config.tcp_linger;
        timeouts[CLASS_UDP as usize] = config.udp_idle;
        timeouts[CLASS_OTHER as usize] = config.other_idle;
        FlowTracker {
            table: Table::new(config.max_flows, config.hash_seed),
            defrag: Defragmenter::new(config.defrag),
            extractor,
            config,
            new_state: Box::new(new_state),
            clock: Timestamp::ZERO,
            stats: TrackerStats::default(),
            timeouts: timeouts.map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)),
            clock_second: 0,
            second_end: NANOS_PER_SEC,
            rewind_after: timeouts.iter().copied().min().unwrap_or(Duration::ZERO),
            tombstones: 0,
            parents: hashbrown::HashMap::with_hasher(foldhash::fast::FixedState::default()),
            obs: crate::obs::Obs::new(),
            warm_above: WARM_ABOVE_BYTES,
            layers: Layers::EMPTY,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &FlowTrackerConfig {
        &self.config
    }

    /// Live flows (always `<= config().max_flows`; aborted flows that still absorb
    /// packets are not counted, though they hold a table slot until they close).
    pub fn flow_count(&self) -> usize {
        self.table.len() - self.tombstones
    }

    /// The flows the last packet handled was tracked in inside tunnels, outermost
    /// first (the packet's own flow is its [`Disposition`]); empty when it carried no
    /// tunnel. At most [`MAX_LISTED_LAYERS`] are listed. For per-packet work on those
    /// flows, such as interim records: read it after `handle_packet`, before anything
    /// else handles packets or ends flows.
    pub fn tunnel_flows(&self) -> &[FlowId] {
        self.layers.of(self.stats.packets)
    }

    /// The key of a live flow.
    pub fn key(&self, id: FlowId) -> Option<E::Key> {
        self.table.get(id.0).filter(|s| s.value.state.is_some()).map(|s| s.key)
    }

    /// End a live flow now, by policy (for example `EndReason::BufferOverflow`): its
    /// `Ended` event goes to `sink`, and its table slot stays as a tombstone that absorbs
    /// the connection's later packets ([`Disposition::Dropped`]) until it closes or goes
    /// idle, so they do not start a new, mid-stream flow.
    pub fn abort(&mut self, id: FlowId, reason: EndReason, sink: &mut impl EventSink<E::Key, S>) {
        if self.key(id).is_some() {
            self.report_end(id.0, reason, sink);
            self.tombstones += 1;
        }
    }

    /// Record a history letter for `side` at the 1st, 10th, 100th, ... `count`
    /// (Zeek's scaled letters, such as `g` for content gaps).
    #[cfg(feature = "reassembler")]
    pub(crate) fn scaled_history(&mut self, id: FlowId, side: FlowSide, code: u8, count: u64) {
        if let Some(slot) = self.table.get_mut(id.0) {
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            slot.value.hist.scaled(side == FlowSide::Initiator, count, code);
        }
    }

    /// The tracker clock: the largest timestamp seen.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    /// Counters so far.
    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    /// Bytes the flow table has allocated (index and slab); divide by
    /// `config().max_flows` for the per-flow cost at capacity.
    pub fn memory_bytes(&self) -> usize {
        self.table.allocated_bytes() + self.parents.allocation_size() + self.defrag.memory_bytes()
    }

    /// The user state of a live flow.
    pub fn state(&self, id: FlowId) -> Option<&S> {
        self.table.get(id.0)?.value.state.as_ref()
    }

    /// The user state of a live flow, mutably.
    pub fn state_mut(&mut self, id: FlowId) -> Option<&mut S> {
        self.table.get_mut(id.0)?.value.state.as_mut()
    }

    /// [`key`](Self::key) and [`state_mut`](Self::state_mut) in one lookup (the
    /// driver's, once a packet).
    #[cfg(feature = "reassembler")]
    #[inline]
    pub(crate) fn key_and_state_mut(&mut self, id: FlowId) -> Option<(E::Key, &mut S)> {
        let slot = self.table.get_mut(id.0)?;
        let key = slot.key;
        slot.value.state.as_mut().map(|s| (key, s))
    }

    /// The statistics of a live flow so far.
    pub fn flow_stats(&self, id: FlowId) -> Option<FlowStats> {
        let slot = self.table.get(id.0)?;
        slot.value.state.as_ref()?;
        Some(slot.value.stats())
    }

    /// A live flow's key, counters, state and history as they stand; `None` for a slot
    /// that holds no live flow.
    pub fn snapshot(&self, id: FlowId) -> Option<FlowSnapshot<E::Key>> {
        let slot = self.table.get(id.0)?;
        let flow = &slot.value;
        flow.state.as_ref()?;
        Some(FlowSnapshot {
            key: slot.key,
            l4: flow.l4,
            initiator: flow.initiator,
            stats: flow.stats(),
            conn_state: flow.conn_state(),
            history: flow.hist.letters,
            serial: self.serial(id.0),
            tunnel_parents: self.tunnel_parents(id.0),
        })
    }

    fn serial(&self, id: u32) -> u64 {
        self.table.get(id).map_or(0, |s| s.value.serial)
    }

    fn tunnel_parents(&self, id: u32) -> TunnelParents {
        if self.parents.is_empty() {
            return TunnelParents::default();
        }
        self.parents.get(&id).copied().unwrap_or_default()
    }

    /// When the next flow would time out if no packet came first.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        (0..table::CLASSES).filter_map(|c| self.table.head(c).map(|id| self.deadline(id, c))).min()
    }

    /// Process one packet. Never fails: a packet that cannot be keyed is counted and
    /// reported as [`Disposition::Unmatched`].
    pub fn handle_packet(
        &mut self,
        packet: &PacketView<'_>,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> Disposition {
        Frames::packet(self, packet, sink)
    }

    /// [`handle_packet`](Self::handle_packet) for each packet of `packets`, in order,
    /// with `each` told each packet's disposition: the same events, counters and
    /// dispositions as that loop, faster when the flow table is larger than the CPU's
    /// caches.
    ///
    /// Packets go in groups of [`BATCH`]. While a group is handled, the first bytes of the
    /// next group's frames are read, so frames not in cache arrive in the meantime (a
    /// capture in memory whose frames are a kilobyte apart: 167 -> 102 ns/packet,
    /// bench/compare). When the table outgrows the caches, a group is keyed, then its
    /// index buckets are read, then its flow entries, before any of its packets is
    /// handled: the lookups are independent, so the processor overlaps their cache misses
    /// instead of waiting for each in turn. Nothing is changed by those reads, so the
    /// outcome is exactly the one-at-a-time outcome (a test holds this on every shared
    /// capture).
    pub fn handle_batch(
        &mut self,
        packets: &[PacketView<'_>],
        sink: &mut impl EventSink<E::Key, S>,
        each: impl FnMut(Disposition),
    ) {
        Frames::batch(self, packets, sink, each)
    }

    /// Whether the live flow entries are too many for the caches, so that looking a
    /// group's flows up ahead pays. Below that the second look costs more than the misses
    /// it hides: on this project's bench machine (1 MiB L2 per core, 32 MiB L3; best of 3
    /// `track_loop` runs, ns/packet), every group looked up ahead against the plain loop,
    /// 1 flow 49 vs 39, 10k flows in slot order 54 vs 49, 16k flows 62 vs 54 in slot order
    /// but 63 vs 67 at random; above, 50k flows at random 96 vs 178, 100k in slot order
    /// 83 vs 112 (2026-11-28; the last two measured before `look_ahead` took two passes).
    #[inline]
    fn worth_warming(&self) -> bool {
        self.table.len().saturating_mul(core::mem::size_of::<table::Slot<E::Key, Flow<S>>>())
            >= self.warm_above
    }

    /// Key a group and look its flows up (see `warm`), changing nothing but `ahead`:
    /// what each packet keyed to, and the slot hint for each.
    ///
    /// In two passes, the index for all eight keys and then the eight entries, so each
    /// packet's wait is index then entry, and the eight waits overlap. Looked up one
    /// after the other (index, entry and key comparison, then the next packet), the
    /// chains were too long for the processor to run many at once: 1M flows at random
    /// 313 -> 246 ns/packet, in slot order 130 -> 122, 50k at random 106 -> 99 (best of
    /// 3, `track_loop`, both builds with loops aligned; see docs/performance.md).
    #[inline]
    fn look_ahead(&self, group: &[PacketView<'_>; BATCH], ahead: &mut Ahead<E::Key>) {
        for (keyed, packet) in ahead.keyed.iter_mut().zip(group) {
            *keyed = self.extractor.extract(packet);
        }
        for (hint, keyed) in ahead.hints.iter_mut().zip(&ahead.keyed) {
            *hint = keyed.as_ref().map_or(NO_HINT, |ex| self.table.candidate(&ex.key));
        }
        for (hint, keyed) in ahead.hints.iter_mut().zip(&ahead.keyed) {
            *hint = self.warm(keyed, *hint);
        }
    }

    /// Look up the flow of a packet keyed `extracted`, trying the index's `candidate`
    /// slot first, and read each cache line of its entry, changing nothing; returns the
    /// slot found (`NO_HINT` for none), a hint for `track`, which checks it is still that
    /// flow's.
    #[inline]
    fn warm(&self, extracted: &Keyed<E::Key>, candidate: u32) -> u32 {
        let Ok(ex) = extracted else { return NO_HINT };
        if candidate == NO_HINT {
            // No slot under the key's tag: the key is not in the table, and probing again
            // would only say so a second time (every new flow's packet in a batch).
            return NO_HINT;
        }
        let Some(id) = self.table.find_hinted(&ex.key, candidate) else { return NO_HINT };
        if let Some(slot) = self.table.get(id) {
            // One field on each of the entry's cache lines, wherever the compiler put
            // them; `black_box` keeps the loads.
            let f = &slot.value;
            core::hint::black_box(
                f.sides[0].packets
                    ^ f.sides[1].last.as_nanos()
                    ^ f.tcp[0].last_rel
                    ^ f.tcp[1].last_rel
                    ^ u64::from(f.hist.seen),
            );
        }
        id
    }

    /// True when defragmentation is on and `extracted` says the packet is a fragment.
    #[inline(always)]
    fn is_fragment(&self, extracted: &Keyed<E::Key>) -> bool {
        self.config.defrag.enabled
            && match extracted {
                Ok(ex) => ex.headers.ip.is_some_and(|ip| ip.fragment.is_some()),
                Err(u) => *u == Unmatched::Fragment,
            }
    }

    /// Hand a fragment `is_fragment` picked to the defragmenter (it counts as one
    /// packet): the datagram it completes (give it back with `recycle_datagram`), or
    /// what became of the fragment.
    fn defragment(
        &mut self,
        packet: &PacketView<'_>,
        extracted: &Keyed<E::Key>,
    ) -> Result<Datagram, Disposition> {
        self.stats.packets += 1;
        // A fragment the extractor could not key was decoded by it, but the headers are
        // not kept in `Unmatched`: decode again (fragments only).
        let decoded = match extracted {
            Ok(ex) => Ok(ex.headers),
            Err(_) => packet::decode(packet),
        };
        let Ok(headers) = decoded else {
            // Not reached: the extractor decoded the same bytes. Counted all the same.
            self.stats.unmatched.count(&Unmatched::Fragment);
            return Err(Disposition::Unmatched(Unmatched::Fragment));
        };
        // Each fragment's header is checked as it comes (the datagram rebuilt from them
        // gets a new one).
        if self.config.verify_checksums
            && self.verify(packet.frame, &headers, true) == Verdict::BadIp
        {
            return Err(self.bad_ip_header());
        }
        let pushed = self.defrag.push(packet, &headers);
        self.stats.defrag = *self.defrag.stats();
        match pushed {
            Push::Complete(d) => Ok(d),
            Push::Absorbed => Err(Disposition::Fragment),
        }
    }

    /// Give a rebuilt datagram's buffer back for reuse (see [`TunnelLayer::datagram`]).
    pub fn recycle_datagram(&mut self, datagram: Datagram) {
        self.defrag.recycle(datagram);
    }

    /// Track the packets nested inside `outer` (decoded from `packet`, tracked as flow
    /// `parent`), layer by layer, down to an innermost TCP segment, which is returned
    /// for the driver to reassemble. Recursion is bounded by the configured depth. Out of
    /// line, like the fragment path.
    #[inline(never)]
    pub(crate) fn follow_tunnels(
        &mut self,
        packet: &PacketView<'_>,
        outer: &Headers,
        parent: FlowId,
        depth: u8,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> Option<InnerTcp> {
        let TunnelLayer { extracted, disposition, datagram } =
            self.decapsulate(packet, outer, parent, depth, sink)?;
        let (Ok(ex), Disposition::Tracked { flow, side, .. }) = (extracted, disposition) else {
            if let Some(d) = datagram {
                self.defrag.recycle(d);
            }
            return None;
        };
        self.layers.push(self.stats.packets, flow);
        if let Transport::Tcp(tcp) = ex.headers.transport {
            return Some(InnerTcp { flow, side, tcp, headers: ex.headers, datagram });
        }
        let Some(d) = datagram else {
            return self.follow_tunnels(packet, &ex.headers, flow, depth + 1, sink);
        };
        // The layers inside were decoded from the rebuilt datagram: it must live as long
        // as a segment that refers to it.
        match self.follow_tunnels(&d.view(packet.ts), &ex.headers, flow, depth + 1, sink) {
            Some(mut inner) if inner.datagram.is_none() => {
                inner.datagram = Some(d);
                Some(inner)
            }
            other => {
                self.defrag.recycle(d);
                other
            }
        }
    }

    /// One tunnel layer: when `outer` (decoded from `packet`, and tracked as flow
    /// `parent`) carries a packet, key it and track it as a flow of its own whose tunnel
    /// parent is `parent`. `depth` counts the layers followed so far for this packet.
    ///
    /// Returns `None` when `outer` is not a tunnel (or its tunnel header is unreadable,
    /// or the nesting is too deep: both counted in [`TrackerStats::tunnels`]); otherwise
    /// what the inner packet keyed to and what the tracker did with it. An inner packet
    /// that is an IP fragment goes to the defragmenter; the fragment that completes its
    /// datagram comes back with the rebuilt datagram (a raw-IP frame), which the
    /// extracted offsets then refer to.
    pub fn decapsulate(
        &mut self,
        packet: &PacketView<'_>,
        outer: &Headers,
        parent: FlowId,
        depth: u8,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> Option<TunnelLayer<E::Key>> {
        let tunnels = &self.config.tunnels;
        let found = packet::encapsulated(packet.frame, outer, tunnels)?;
        if depth >= tunnels.max_depth {
            if tunnels.max_depth > 0 {
                self.stats.tunnels.too_deep += 1;
            }
            return None;
        }
        let encap = match found {
            Ok(e) => e,
            Err(_) => {
                self.stats.tunnels.malformed += 1;
                return None;
            }
        };
        if let Some(n) = self.stats.tunnels.by_kind.get_mut(encap.kind.index()) {
            *n += 1;
        }
        let decoded = packet::decode_encapsulated(packet, outer, &encap);
        let verify = self.config.verify_checksums;
        let mut datagram = None;
        let extracted = match decoded {
            Ok(h) if self.config.defrag.enabled && h.ip.is_some_and(|ip| ip.fragment.is_some()) => {
                if verify && self.verify(packet.frame, &h, true) == Verdict::BadIp {
                    return Some(TunnelLayer {
                        extracted: Err(Unmatched::Fragment),
                        disposition: self.bad_ip_header(),
                        datagram: None,
                    });
                }
                let pushed = self.defrag.push_inner(packet, &h);
                self.stats.defrag = *self.defrag.stats();
                let Push::Complete(d) = pushed else {
                    return Some(TunnelLayer {
                        extracted: Err(Unmatched::Fragment),
                        disposition: Disposition::Fragment,
                        datagram: None,
                    });
                };
                let extracted = self.extractor.extract(&d.view(packet.ts));
                datagram = Some(d);
                extracted
            }
            Ok(h) => self.extractor.extract_headers(packet.frame, h),
            Err(e) => Err(Unmatched::from(e)),
        };
        // A rebuilt datagram's header was rewritten; its fragments' were checked above.
        let verdict = match (&extracted, &datagram) {
            (Ok(ex), d) if verify => match d {
                Some(d) => self.verify(&d.frame, &ex.headers, false),
                None => self.verify(packet.frame, &ex.headers, true),
            },
            _ => Verdict::Good,
        };
        if verdict == Verdict::BadIp {
            let disposition = self.bad_ip_header();
            return Some(TunnelLayer { extracted, disposition, datagram });
        }
        let parent_serial = self.table.get(parent.0).map(|_| self.serial(parent.0));
        let via = parent_serial.map_or(Via::Frame(NO_HINT), Via::Tunnel);
        let disposition = match (&extracted, verdict) {
            (Ok(ex), Verdict::BadTransport) => self.track_corrupt(packet.ts, ex, via, sink),
            _ => self.track(packet.ts, &extracted, via, sink),
        };
        if let (Disposition::Tracked { flow, .. }, Some(serial)) = (disposition, parent_serial) {
            self.parents.entry(flow.0).or_default().add(serial);
        }
        Some(TunnelLayer { extracted, disposition, datagram })
    }

    /// The extractor in use (to key a packet once and hand the result to
    /// [`FlowTracker::handle_extracted`]).
    pub fn extractor(&self) -> &E {
        &self.extractor
    }

    /// [`handle_packet`](Self::handle_packet) for a packet the caller keyed already
    /// with this tracker's extractor (the driver does, to reuse the decoded headers).
    ///
    /// `packet` is the packet `extracted` was keyed from: its time, and its bytes when
    /// checksums are verified.
    pub fn handle_extracted(
        &mut self,
        packet: &PacketView<'_>,
        extracted: &Result<Extracted<E::Key>, Unmatched>,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> Disposition {
        self.handle_keyed(packet, extracted, true, NO_HINT, sink)
    }

    /// [`handle_extracted`](Self::handle_extracted), counting the packet only when
    /// `count` (a rebuilt datagram was counted when its last fragment came); `hint` as
    /// for `track`.
    #[inline(always)]
    pub(crate) fn handle_keyed(
        &mut self,
        packet: &PacketView<'_>,
        extracted: &Keyed<E::Key>,
        count: bool,
        hint: u32,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> Disposition {
        if count {
            self.stats.packets += 1;
        }
        if self.config.verify_checksums {
            return self.handle_verified(packet, extracted, count, hint, sink);
        }
        self.track(packet.ts, extracted, Via::Frame(hint), sink)
    }

    /// `handle_keyed`'s rest when checksums are verified. Out of line: with the check in
    /// `handle_keyed` every packet cost 30 instructions more whether or not checksums
    /// were verified (callgrind, `track_loop 1 200000`: 910 -> 940).
    #[inline(never)]
    fn handle_verified(
        &mut self,
        packet: &PacketView<'_>,
        extracted: &Keyed<E::Key>,
        count: bool,
        hint: u32,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> Disposition {
        let via = Via::Frame(hint);
        let Ok(ex) = extracted else { return self.track(packet.ts, extracted, via, sink) };
        // A rebuilt datagram (not counted here) had its header rewritten; its fragments'
        // headers were checked as they came.
        match self.verify(packet.frame, &ex.headers, count) {
            Verdict::Good => self.track(packet.ts, extracted, via, sink),
            Verdict::BadIp => self.bad_ip_header(),
            Verdict::BadTransport => self.track_corrupt(packet.ts, ex, via, sink),
        }
    }

    /// Check a packet's checksums (`check_ip`: its IPv4 header's too).
    fn verify(&self, frame: &[u8], headers: &Headers, check_ip: bool) -> Verdict {
        checksum::verify(frame, headers, check_ip, &self.config.tunnels.vxlan_ports)
    }

    /// A packet dropped for a wrong IPv4 header checksum.
    #[cold]
    fn bad_ip_header(&mut self) -> Disposition {
        self.stats.bad_checksum += 1;
        Disposition::BadChecksum { flow: None, created: false }
    }

    /// Account one keyed packet (a frame's, or one found in a tunnel whose flow has
    /// serial `parent`).
    // Never inlined: it has two callers (frames, tunnelled packets), and inlined into
    // both it left the table lookup and the flow update out of line in each, a call
    // apiece per packet; as one function it keeps them inline.
    #[inline(never)]
    fn track(
        &mut self,
        ts: Timestamp,
        extracted: &Keyed<E::Key>,
        via: Via,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> Disposition {
        // Borrowed rather than moved out of the Result, so the ~170-byte value is not
        // copied a second time.
        let ex = match extracted {
            Ok(ex) => ex,
            Err(u) => {
                self.stats.unmatched.count(u);
                self.obs.unmatched();
                return Disposition::Unmatched(*u);
            }
        };
        self.tick(ts, sink);
        let (id, created) = self.find_or_create(ex, ts, via, sink);
        let side = self.update(id, ex, ts, sink);
        if self.table.get(id).is_some_and(|s| s.value.state.is_none()) {
            self.stats.dropped += 1;
            return Disposition::Dropped { flow: FlowId(id), side };
        }
        self.stats.tracked += 1;
        Disposition::Tracked { flow: FlowId(id), side, created }
    }

    /// Move the clock to a packet's time `ts` (a late packet moves it back only when very
    /// late) and, in a new second, end the flows that timed out.
    #[inline(always)]
    fn tick(&mut self, ts: Timestamp, sink: &mut impl EventSink<E::Key, S>) {
        if ts < self.clock {
            self.stats.late_packets += 1;
            if ts.saturating_add(self.rewind_after) < self.clock {
                self.stats.clock_rewinds += 1;
                self.set_clock(ts);
            }
        } else {
            // Not before the clock, so in another second exactly when past its end; in
            // the same second only the clock itself moves (`set_clock` tested both ways
            // again: callgrind, `drive_loop 200`, 717 -> 705 instructions a packet).
            self.clock = ts;
            // Sweeping the list heads costs a few cache misses, so it runs once per
            // second of packet time (expiry is exact to the second anyway); the flow a
            // packet belongs to is checked exactly, by `find_or_create`.
            if ts.as_nanos() >= self.second_end {
                self.set_clock(ts);
                self.expire(sink);
            }
        }
    }

    /// The live flow of `ex`, or a new one (ending the one it replaces: a reused port,
    /// or a flow past its timeout); and whether it was created.
    #[inline(always)]
    fn find_or_create(
        &mut self,
        ex: &Extracted<E::Key>,
        ts: Timestamp,
        via: Via,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> (u32, bool) {
        let (parent, hint) = match via {
            Via::Frame(hint) => (None, hint),
            Via::Tunnel(parent) => (Some(parent), NO_HINT),
        };
        match self.table.find_hinted(&ex.key, hint) {
            Some(id) if self.is_reuse(id, ex) => {
                self.stats.port_reuses += 1;
                self.end_naturally(id, sink);
                (self.create(ex, ts, parent, sink), true)
            }
            Some(id) if self.is_expired(id) => {
                self.end_naturally(id, sink);
                (self.create(ex, ts, parent, sink), true)
            }
            Some(id) => (id, false),
            None => (self.create(ex, ts, parent, sink), true),
        }
    }

    /// `track` for a packet whose transport checksum is wrong: as in Zeek, it is looked
    /// up (a new flow created for it) but only marks the flow's history (TCP and UDP: a
    /// scaled `C`) and gives a flow it created its start time. A flow ended by policy
    /// absorbs it. Kept apart from `track`: as a branch there, after the lookup, it cost
    /// every packet 5 instructions (callgrind, `track_loop 1 200000`).
    #[cold]
    #[inline(never)]
    fn track_corrupt(
        &mut self,
        ts: Timestamp,
        ex: &Extracted<E::Key>,
        via: Via,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> Disposition {
        self.tick(ts, sink);
        let (id, created) = self.find_or_create(ex, ts, via, sink);
        let Some(slot) = self.table.get_mut(id) else {
            self.stats.bad_checksum += 1;
            return Disposition::BadChecksum { flow: None, created: false };
        };
        let flow = &mut slot.value;
        let i = usize::from(ex.orientation != flow.initiator);
        if flow.state.is_none() {
            self.stats.dropped += 1;
            return Disposition::Dropped { flow: FlowId(id), side: FlowSide::at(i) };
        }
        self.stats.bad_checksum += 1;
        if created {
            flow.sides[i].first = ts;
            flow.sides[i].last = ts;
        }
        if matches!(flow.l4, L4Proto::Tcp | L4Proto::Udp) {
            let ep = &mut flow.tcp[i];
            ep.bad_checksums = ep.bad_checksums.saturating_add(1);
            flow.hist.scaled(i == 0, u32::from(ep.bad_checksums), b'C');
        }
        Disposition::BadChecksum { flow: Some(FlowId(id)), created }
    }

    /// Move the clock to `now` (if later) and end the flows that timed out. For live
    /// capture, call this about once a second so idle flows end when traffic stops.
    pub fn advance(&mut self, now: Timestamp, sink: &mut impl EventSink<E::Key, S>) {
        if now > self.clock {
            self.set_clock(now);
        }
        self.defrag.expire(self.clock);
        self.stats.defrag = *self.defrag.stats();
        self.expire(sink);
    }

    /// End every live flow (input is over): closed TCP flows with `Fin` or `Rst`, all
    /// others with `Idle`, least recently active first.
    pub fn finish(&mut self, sink: &mut impl EventSink<E::Key, S>) {
        // Every flow goes, so the index is emptied once at the end rather than entry by
        // entry, a cache miss per flow: finishing a million live flows took 280-298 ms,
        // now 23-32 ms (`bench/compare -- --profile-wide`).
        while let Some(id) = self.least_recent() {
            let reason = self.table.get(id).map_or(EndReason::Idle, |s| s.value.natural_end());
            self.settle(id, reason, sink);
            self.table.release(id);
        }
        self.table.clear_index();
    }

    /// When a flow of `class` times out: the attempt class counts from the flow's first
    /// packet (a connection attempt gets a fixed time to draw an answer, as Zeek's
    /// `tcp_attempt_delay`), every other class from its last packet.
    fn deadline(&self, id: u32, class: usize) -> Timestamp {
        let Some(slot) = self.table.get(id) else { return Timestamp::ZERO };
        let base = if class == usize::from(CLASS_TCP_ATTEMPT) {
            slot.value.first_activity()
        } else {
            slot.value.last_activity()
        };
        let timeout = self.timeouts.get(class).copied().unwrap_or(0);
        Timestamp::from_nanos(base.as_nanos().saturating_add(timeout))
    }

    /// Move the clock to `t` (either way), and its second with it when that changes.
    #[inline]
    fn set_clock(&mut self, t: Timestamp) {
        self.clock = t;
        let ns = t.as_nanos();
        if ns >= self.second_end || ns < self.second_end - NANOS_PER_SEC {
            let secs = t.secs();
            self.clock_second = secs as u32;
            self.second_end = secs.saturating_add(1).saturating_mul(NANOS_PER_SEC);
        }
    }

    /// End the flows whose deadline the clock has passed.
    ///
    /// Lists are ordered by last activity to the second (see `update`), so the head is the
    /// next flow to expire, give or take a second: expiry is never early and at most one
    /// second late.
    fn expire(&mut self, sink: &mut impl EventSink<E::Key, S>) {
        for class in 0..table::CLASSES {
            while let Some(id) = self.table.head(class) {
                if self.deadline(id, class) >= self.clock {
                    break;
                }
                self.end_naturally(id, sink);
            }
        }
    }

    /// True when a live flow's own deadline has passed (it would be ended by the next
    /// sweep): a packet for it starts a new flow instead.
    fn is_expired(&self, id: u32) -> bool {
        let Some(slot) = self.table.get(id) else { return false };
        self.deadline(id, usize::from(slot.class())) < self.clock
    }

    /// The least recently active live flow.
    fn least_recent(&self) -> Option<u32> {
        (0..table::CLASSES).filter_map(|c| self.table.head(c)).min_by_key(|&id| {
            self.table.get(id).map_or(Timestamp::ZERO, |s| s.value.last_activity())
        })
    }

    /// Whether a SYN starts a new connection on the 5-tuple of a live flow (port reuse):
    /// after a RST, any new SYN does (Zeek logs each refused attempt as its own REJ
    /// connection even when the client retries with the same ISN); after a FIN, a SYN
    /// with a new ISN does, while a retransmitted one (same ISN) stays in the flow.
    fn is_reuse(&self, id: u32, ex: &Extracted<E::Key>) -> bool {
        // The segment's flags first: most packets are no SYN, and need not look at the
        // flow (callgrind, `drive_loop 200`: 664 -> 659 instructions a packet).
        let Some(t) = ex.headers.tcp().filter(|t| t.flags.syn() && !t.flags.rst()) else {
            return false;
        };
        let Some(flow) = self.table.get(id).map(|s| &s.value) else { return false };
        if flow.l4 != L4Proto::Tcp {
            return false;
        }
        use EndpointState::*;
        // A SYN-ACK can only reuse a half connection whose initiator never spoke.
        if t.flags.ack() && flow.tcp[0].state != Inactive {
            return false;
        }
        if flow.tcp.iter().any(|e| e.state == Reset) {
            return true;
        }
        if !flow.tcp.iter().any(|e| e.state == Closed) {
            return false;
        }
        let sender = &flow.tcp[usize::from(ex.orientation != flow.initiator)];
        sender.state == Inactive || !sender.same_start(t.seq)
    }

    fn create(
        &mut self,
        ex: &Extracted<E::Key>,
        ts: Timestamp,
        parent: Option<u64>,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> u32 {
        if self.table.is_full() {
            if let Some(victim) = self.least_recent() {
                self.end(victim, EndReason::Evicted, sink);
            }
        }
        let l4 = ex.l4();
        let flip = self.flip_roles(ex, l4);
        let initiator = if flip { ex.orientation.flip() } else { ex.orientation };
        let mut hist = HistoryRec::default();
        if flip {
            hist.add_raw(b'^');
        }
        let serial = self.stats.flows_created;
        let flow = Flow {
            l4,
            initiator,
            established: false,
            sides: [Side::default(); 2],
            tcp: [TcpEndpoint::default(); 2],
            hist,
            serial,
            state: Some((self.new_state)(ex, ts)),
        };
        let class = flow.class();
        // Room was made above (the table holds at least one flow), so the insert cannot
        // fail; if it did, `update` finds no slot at NIL and the packet is only counted.
        let Some(id) = self.table.insert(ex.key, flow, class, self.clock_second) else {
            return table::NIL;
        };
        self.stats.flows_created += 1;
        self.obs.flow_created(l4);
        sink.event(FlowEvent::Started {
            key: ex.key,
            initiator,
            orientation: ex.orientation,
            l4,
            ts,
            serial,
            parent,
        });
        id
    }

    /// Zeek's heuristics for who started a flow whose first packet we see: a SYN-ACK comes
    /// from the responder; without a SYN, a well-known server port marks the responder;
    /// UDP from a server port to a client port (not broadcast or multicast) is a reply.
    fn flip_roles(&self, ex: &Extracted<E::Key>, l4: L4Proto) -> bool {
        let Some((sport, dport)) = ex.headers.ports() else { return false };
        let server = |p| self.config.is_likely_server_port(l4, p);
        match ex.headers.transport {
            Transport::Tcp(t) if t.flags.syn() => t.flags.ack(),
            // Both plausible: favour the lower port as the server.
            Transport::Tcp(_) => server(sport) && (!server(dport) || sport < dport),
            Transport::Udp(_) => {
                let to_group = ex.headers.ip.is_some_and(|ip| is_group_address(ip.dst()));
                server(sport) && !server(dport) && !to_group
            }
            _ => false,
        }
    }

    /// Account one packet to its flow; returns the side that sent it.
    fn update(
        &mut self,
        id: u32,
        ex: &Extracted<E::Key>,
        ts: Timestamp,
        sink: &mut impl EventSink<E::Key, S>,
    ) -> FlowSide {
        let Some(slot) = self.table.get_mut(id) else { return FlowSide::Initiator };
        let flow = &mut slot.value;
        let i = usize::from(ex.orientation != flow.initiator);
        let h = &ex.headers;
        let s = &mut flow.sides[i];
        // A side's first packet sets its times, unless a packet with a bad checksum
        // created the flow and set them (see `event::earliest_start`).
        if s.packets == 0 && s.first == Timestamp::ZERO {
            s.first = ts;
            s.last = ts;
        } else {
            s.first = s.first.min(ts);
            s.last = s.last.max(ts);
        }
        s.packets += 1;
        s.l2_bytes += u64::from(h.frame_len);
        s.ip_bytes += h.ip.map_or(0, |ip| u64::from(ip.ip_len));
        // Whether this packet can move the flow to another timeout class: only a TCP
        // segment can, and not a steady-state one (see `tcp::on_segment`); otherwise the
        // class stays what the slot holds. Skipping the recomputation saves 12 of 903
        // instructions a packet (callgrind, `track_loop 1 200000`).
        let mut reclass = false;
        match &h.transport {
            Transport::Tcp(t) => {
                let seg = Segment { tcp: t, len: h.payload_wire_len };
                let [a, b] = &mut flow.tcp;
                let (ep, peer) = if i == 0 { (a, b) } else { (b, a) };
                reclass = !tcp::on_segment(ep, peer, i == 0, seg, &mut flow.hist);
            }
            Transport::Udp(_) => {
                flow.tcp[i].last_rel += u64::from(h.payload_wire_len);
                // Zeek marks every UDP packet, empty ones included.
                flow.hist.check(i == 0, tcp::hist::DATA, b'D');
            }
            Transport::Icmp(_) => flow.tcp[i].last_rel += u64::from(h.payload_wire_len),
            // Zeek counts no payload for protocols it does not analyze.
            _ => {}
        }
        let newly_established =
            !flow.established && flow.state.is_some() && both_sides_engaged(flow);
        if newly_established {
            flow.established = true;
        }
        let class = if reclass || newly_established {
            flow.class()
        } else {
            debug_assert_eq!(flow.class(), slot.class(), "a packet that cannot reclassify did");
            slot.class()
        };
        // Copied only for the event: 40 bytes a packet otherwise.
        let key = newly_established.then_some(slot.key);
        // Lists are kept in order of last activity to the second: a flow moves to the
        // tail when its class changes, or on its first packet in a new second. Moving on
        // every packet writes three other flows' entries (both neighbours and the old
        // tail), random memory when packets of many flows interleave; the round-robin
        // bench cannot show it (its neighbours are always cached), so no figure is
        // claimed. Attempts stay in creation order: their deadline counts from the first
        // packet.
        let now = self.clock_second;
        let relink = slot.class() != class || (class != CLASS_TCP_ATTEMPT && slot.stamp() != now);
        if relink {
            self.table.touch(id, class, now);
        }
        if let Some(key) = key {
            sink.event(FlowEvent::Established { key, ts });
        }
        FlowSide::at(i)
    }

    /// End a flow for the reason its own state gives (see `natural_end`).
    fn end_naturally(&mut self, id: u32, sink: &mut impl EventSink<E::Key, S>) {
        let reason = self.table.get(id).map_or(EndReason::Idle, |s| s.value.natural_end());
        self.end(id, reason, sink);
    }

    /// End a flow: report it (unless it was aborted and reported already), then free
    /// its slot.
    fn end(&mut self, id: u32, reason: EndReason, sink: &mut impl EventSink<E::Key, S>) {
        self.settle(id, reason, sink);
        self.table.remove(id);
    }

    /// The account of a flow about to leave the table: its `Ended` event, or, for an
    /// aborted flow reported already, one tombstone fewer.
    fn settle(&mut self, id: u32, reason: EndReason, sink: &mut impl EventSink<E::Key, S>) {
        let Some(slot) = self.table.get(id) else { return };
        if slot.value.state.is_some() {
            self.report_end(id, reason, sink);
        } else {
            self.tombstones -= 1;
        }
    }

    /// Emit a flow's `Ended` event and count it; the slot stays (as a tombstone until
    /// `end` frees it).
    fn report_end(&mut self, id: u32, reason: EndReason, sink: &mut impl EventSink<E::Key, S>) {
        let Some(slot) = self.table.get_mut(id) else { return };
        let Some(state) = slot.value.state.take() else { return };
        let flow = &slot.value;
        // Most runs see no tunnel at all: then the map is empty and never looked up.
        let tunnel_parents = if self.parents.is_empty() {
            TunnelParents::default()
        } else {
            self.parents.remove(&id).unwrap_or_default()
        };
        let stats = flow.stats();
        self.obs.flow_ended(flow.l4, reason, &stats);
        let event = FlowEvent::Ended {
            key: slot.key,
            reason,
            l4: flow.l4,
            initiator: flow.initiator,
            stats,
            conn_state: flow.conn_state(),
            history: flow.hist.letters,
            ts: self.clock,
            serial: flow.serial,
            tunnel_parents,
            state,
        };
        self.stats.history_overflow += u64::from(flow.hist.overflow);
        self.stats.flows_ended.count(reason);
        sink.event(event);
    }
}

/// True once both sides have taken part: TCP past the handshake or picked up
/// mid-stream on both sides; anything else once both sides sent.
fn both_sides_engaged<S>(flow: &Flow<S>) -> bool {
    match flow.l4 {
        L4Proto::Tcp => {
            use EndpointState::*;
            flow.tcp.iter().all(|e| matches!(e.state, Partial | Established))
        }
        _ => flow.sides.iter().all(|s| s.packets > 0),
    }
}

/// Broadcast or multicast destinations never answer as a server would.
fn is_group_address(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.octets()[3] == 255,
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

impl<E: FlowExtractor, S, Sk: EventSink<E::Key, S>> Frames<Sk> for FlowTracker<E, S> {
    type Extractor = E;
    type State = S;

    #[inline(always)]
    fn tracker(&self) -> &FlowTracker<E, S> {
        self
    }

    #[inline(always)]
    fn tracker_mut(&mut self) -> &mut FlowTracker<E, S> {
        self
    }

    /// Track a whole packet (a frame, or a datagram rebuilt from fragments, which was
    /// counted as a packet already) and the tunnels inside it; `hint` as for `track`.
    #[inline]
    fn whole(
        &mut self,
        packet: &PacketView<'_>,
        extracted: &Keyed<E::Key>,
        count: bool,
        hint: u32,
        sink: &mut Sk,
    ) -> Disposition {
        let disposition = self.handle_keyed(packet, extracted, count, hint, sink);
        // Only UDP and the IP protocols tunnels use can carry one: TCP, most of the
        // traffic, skips the call.
        if let (Ok(outer), Disposition::Tracked { flow, .. }) = (extracted, disposition) {
            if !matches!(outer.headers.transport, Transport::Tcp(_)) {
                // The tracker has no streams: an inner TCP segment needs nothing more.
                if let Some(InnerTcp { datagram: Some(d), .. }) =
                    self.follow_tunnels(packet, &outer.headers, flow, 0, sink)
                {
                    self.defrag.recycle(d);
                }
            }
        }
        disposition
    }
}

#[cfg(test)]
mod tests;
