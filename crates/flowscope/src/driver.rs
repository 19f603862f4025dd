//! The flow driver: the tracker plus per-side TCP reassembly, one call per packet.
//!
//! [`FlowDriver`] keys each packet once, hands it to its [`FlowTracker`] for the flow
//! lifecycle, and feeds TCP payload to the flow's two [`Reassembler`]s, whose state lives
//! in the flow's table entry (no second hash map). The reassemblers are
//! [`DefaultReassembler`]s unless a [`ReassemblerFactory`] of the user's says otherwise
//! ([`FlowDriver::with_factory`]). Everything comes out through one
//! [`DriverSink`]: lifecycle events, in-order stream bytes borrowed from the packet
//! ([`DriverEvent::Data`]), gaps, FIN and RST markers, and, with
//! [`FlowDriver::with_emit_anomalies`], anomalies.
//!
//! Memory: each TCP flow that carries payload gets its reassembly state from a pool
//! (allocated once per concurrent flow, reused after), and out-of-order bytes are bounded
//! per side by [`FlowTrackerConfig::max_buffer`] and across all flows by
//! [`FlowTrackerConfig::max_reassembly_memory`]. In-order delivery never copies and, once
//! warm, never allocates (a counting-allocator test holds this).

use crate::defrag::Datagram;
use crate::event::{AnomalyKind, EndReason, FlowEvent, FlowSide, SideStats};
use crate::extract::FlowExtractor;
use crate::obs::Obs;
use crate::packet::{PacketView, Transport};
use crate::reassembly::{
    DefaultReassembler, DefaultReassemblerFactory, Outcome, Reassembler, ReassemblerFactory,
    ReassemblyConfig, StreamEvent, StreamStats,
};
use crate::time::Timestamp;
use crate::tracker::{
    Disposition, FlowId, FlowSnapshot, FlowTracker, FlowTrackerConfig, Frames, Keyed,
    OverflowPolicy, TrackerStats,
};

/// Everything the driver reports.
// `Flow` carries the large `Ended` event; boxing it would allocate per flow end.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DriverEvent<'a, K, S = ()> {
    /// A lifecycle event (or an anomaly).
    Flow(FlowEvent<K, S>),
    /// Stream bytes of one side, in order, each byte exactly once. `bytes` borrows the
    /// packet (in-order data) or the reassembly buffer (data released by a filled hole).
    Data {
        /// The flow.
        key: K,
        /// Whose stream.
        side: FlowSide,
        /// Stream offset of the first byte (0 = the byte after the SYN).
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// Bytes of one side's stream that were never seen and are skipped.
    Gap {
        /// The flow.
        key: K,
        /// Whose stream.
        side: FlowSide,
        /// Stream offset of the first missing byte.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// A side sent a FIN (reported for every FIN segment, after its data).
    Fin {
        /// The flow.
        key: K,
        /// Who sent it.
        side: FlowSide,
    },
    /// A side sent a RST.
    Rst {
        /// The flow.
        key: K,
        /// Who sent it.
        side: FlowSide,
    },
}

/// Where the driver's events go; implemented for closures.
///
/// Events borrow the packet, so a closure sink must accept any lifetime; name the
/// argument's type so Rust infers that:
/// `driver.handle_packet(&view, &mut |e: DriverEvent<'_, FiveTupleKey>| { ... })`.
pub trait DriverSink<K, S = ()> {
    /// Take one event.
    fn event(&mut self, event: DriverEvent<'_, K, S>);
}

impl<K, S, F: FnMut(DriverEvent<'_, K, S>)> DriverSink<K, S> for F {
    #[inline]
    fn event(&mut self, event: DriverEvent<'_, K, S>) {
        self(event)
    }
}

/// Both sides' reassemblers: index 0 the initiator's stream, 1 the responder's.
type Streams<A> = [A; 2];

/// What the driver keeps in each flow's table entry: the user's state and, once the flow
/// has something to reassemble, its two reassemblers of type `A`.
#[derive(Debug, Default)]
pub struct FlowState<S, A = DefaultReassembler> {
    user: S,
    streams: StreamSlot<A>,
}

/// A flow's streams, or until it has any, where they would start.
///
/// One field for the two: the starts are replayed into the reassemblers when they are
/// made and never read again, so they share the space, and every driver flow's table
/// entry is 8 bytes smaller (a slot of 280 bytes became 272; `tests/floods.rs`).
#[derive(Debug)]
enum StreamSlot<A> {
    /// Where each side's stream starts (the sequence number of its first data byte),
    /// from its SYN or its first segment: all the streams would have learned so far.
    Anchors([Option<u32>; 2]),
    /// Taken from the pool when the flow first has something to reassemble (payload,
    /// a FIN, an acknowledgment of unseen data); returned when it ends.
    Open(Box<Streams<A>>),
}

impl<A> Default for StreamSlot<A> {
    fn default() -> Self {
        StreamSlot::Anchors([None; 2])
    }
}

impl<A> StreamSlot<A> {
    /// The reassemblers, when the flow has them.
    #[inline]
    fn open(&self) -> Option<&Streams<A>> {
        match self {
            StreamSlot::Open(s) => Some(s),
            StreamSlot::Anchors(_) => None,
        }
    }

    /// The reassemblers, mutably, when the flow has them.
    #[inline]
    fn open_mut(&mut self) -> Option<&mut Streams<A>> {
        match self {
            StreamSlot::Open(s) => Some(s),
            StreamSlot::Anchors(_) => None,
        }
    }
}

/// Counters the driver keeps on top of the tracker's.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Stream bytes delivered.
    pub delivered_bytes: u64,
    /// Stream bytes reported missing.
    pub missed_bytes: u64,
    /// Flows ended because reassembly hit a cap under `DropFlow`.
    pub overflow_aborts: u64,
    /// Out-of-order bytes buffered across all flows now.
    pub buffered_bytes: u64,
    /// Peak of `buffered_bytes`.
    pub buffered_high_watermark: u64,
}

/// The tracker inside a driver.
type Tracker<E, S, R> = FlowTracker<E, FlowState<S, <R as ReassemblerFactory>::Reassembler>>;

/// Tracking plus reassembly: see the [module docs](self). `R` makes the reassemblers.
pub struct FlowDriver<E: FlowExtractor, S = (), R: ReassemblerFactory = DefaultReassemblerFactory> {
    tracker: Tracker<E, S, R>,
    factory: R,
    reassembly: ReassemblyConfig,
    global_cap: usize,
    /// Stream states ever allocated (live in flows or waiting in the pool); never more
    /// than the most TCP flows live at once, so at most `max_flows`.
    streams_allocated: usize,
    /// What handling a flow's end needs, apart from the tracker.
    ends: Ends<R::Reassembler>,
}

/// The driver's parts an [`EndHandler`] works on, in one place so that handing them over
/// (on every packet, beside the tracker) is one reference: built from four separate ones,
/// the handler cost 11 instructions a packet more (callgrind, `drive_loop 200`: 659 ->
/// 648).
struct Ends<A> {
    emit_anomalies: bool,
    // Boxes, not values: flows own their streams through the same boxes, so handing one
    // from the pool to a flow and back moves a pointer, never the ~340-byte state.
    #[allow(clippy::vec_box)]
    pool: Vec<Box<Streams<A>>>,
    stats: DriverStats,
    obs: Obs,
}

impl<E: FlowExtractor, S, R: ReassemblerFactory> core::fmt::Debug for FlowDriver<E, S, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlowDriver")
            .field("tracker", &self.tracker)
            .field("stats", &self.ends.stats)
            .finish()
    }
}

impl<E: FlowExtractor, S: Default + 'static> FlowDriver<E, S, DefaultReassemblerFactory> {
    /// A driver whose per-flow user state starts as `S::default()`.
    pub fn new(extractor: E, config: FlowTrackerConfig) -> Self {
        Self::with_state(extractor, config, |_| S::default())
    }
}

impl<E: FlowExtractor, S: 'static> FlowDriver<E, S, DefaultReassemblerFactory> {
    /// A driver that creates each flow's user state with `new_state(&key)`.
    pub fn with_state(
        extractor: E,
        config: FlowTrackerConfig,
        mut new_state: impl FnMut(&E::Key) -> S + 'static,
    ) -> Self {
        Self::with_state_from(extractor, config, move |ex, _| new_state(&ex.key))
    }

    /// A driver that creates each flow's user state from the packet that created it
    /// (see [`FlowTracker::with_state_from`]).
    pub fn with_state_from(
        extractor: E,
        config: FlowTrackerConfig,
        new_state: impl FnMut(&crate::extract::Extracted<E::Key>, Timestamp) -> S + 'static,
    ) -> Self {
        FlowDriver::with_factory(extractor, config, DefaultReassemblerFactory, new_state)
    }
}

impl<E: FlowExtractor, S: 'static, R: ReassemblerFactory> FlowDriver<E, S, R> {
    /// A driver whose reassemblers come from `factory` (see [`Reassembler`] for what the
    /// driver expects of them), creating each flow's user state from the packet that
    /// created it (see [`FlowTracker::with_state_from`]). The configuration's
    /// reassembly limits reach the reassemblers through each
    /// [`Reassembler::segment`] call.
    pub fn with_factory(
        extractor: E,
        config: FlowTrackerConfig,
        factory: R,
        mut new_state: impl FnMut(&crate::extract::Extracted<E::Key>, Timestamp) -> S + 'static,
    ) -> Self {
        let reassembly = ReassemblyConfig::default()
            .with_max_buffer(config.max_buffer)
            .with_overflow(config.overflow_policy)
            .with_overlap(config.overlap_policy)
            .with_retransmit_check(config.retransmit_check_bytes);
        let global_cap = config.max_reassembly_memory;
        FlowDriver {
            tracker: FlowTracker::with_state_from(extractor, config, move |ex, ts| FlowState {
                user: new_state(ex, ts),
                streams: StreamSlot::default(),
            }),
            factory,
            reassembly,
            global_cap,
            streams_allocated: 0,
            ends: Ends {
                emit_anomalies: false,
                pool: Vec::new(),
                stats: DriverStats::default(),
                obs: Obs::new(),
            },
        }
    }
}

impl<E: FlowExtractor, S, R: ReassemblerFactory> FlowDriver<E, S, R> {
    /// Report anomalies as `FlowEvent::Anomaly` (off by default).
    pub fn with_emit_anomalies(mut self, yes: bool) -> Self {
        self.ends.emit_anomalies = yes;
        self
    }

    /// The tracker underneath (flow counts, its stats, per-flow statistics).
    pub fn tracker(&self) -> &FlowTracker<E, FlowState<S, R::Reassembler>> {
        &self.tracker
    }

    /// The tracker's counters.
    pub fn tracker_stats(&self) -> &TrackerStats {
        self.tracker.stats()
    }

    /// The driver's counters.
    pub fn stats(&self) -> &DriverStats {
        &self.ends.stats
    }

    /// Bytes the driver holds: the flow table ([`FlowTracker::memory_bytes`]), one
    /// reassembly state per TCP flow live at once (kept in a pool after the flow ends,
    /// for the next one) with each side's retransmission window
    /// ([`FlowTrackerConfig::retransmit_check_bytes`], which the default reassembler
    /// keeps), and the out-of-order bytes buffered now. Out-of-order storage
    /// is counted by the bytes it holds; its allocations add at most a small factor (see
    /// docs/bounded-memory.md).
    pub fn memory_bytes(&self) -> usize {
        self.tracker.memory_bytes()
            + self.streams_allocated
                * (core::mem::size_of::<Streams<R::Reassembler>>()
                    + 2 * self.reassembly.retransmit_check)
            + self.ends.stats.buffered_bytes as usize
    }

    /// The flows the last packet was tracked in inside tunnels, outermost first (see
    /// [`FlowTracker::tunnel_flows`]).
    pub fn tunnel_flows(&self) -> &[FlowId] {
        self.tracker.tunnel_flows()
    }

    /// A live flow as it stands, with its streams' missed bytes and reassembly counters
    /// so far (see [`FlowTracker::snapshot`]).
    pub fn snapshot(&self, id: FlowId) -> Option<FlowSnapshot<E::Key>> {
        let mut snap = self.tracker.snapshot(id)?;
        if let Some(streams) = self.tracker.state(id).and_then(|s| s.streams.open()) {
            for (r, s) in streams.iter().zip([&mut snap.stats.initiator, &mut snap.stats.responder])
            {
                copy_stream_stats(s, r.stats());
            }
        }
        Some(snap)
    }

    /// The user state of a live flow.
    pub fn state_mut(&mut self, id: FlowId) -> Option<&mut S> {
        self.tracker.state_mut(id).map(|s| &mut s.user)
    }

    /// The tracker, and an [`EndHandler`] over the rest of the driver: two disjoint
    /// borrows, so tracker calls can feed their events to the handler.
    fn split<'d, Sk>(
        &'d mut self,
        sink: &'d mut Sk,
    ) -> (&'d mut Tracker<E, S, R>, EndHandler<'d, Sk, R::Reassembler>) {
        let ends = EndHandler { ends: &mut self.ends, sink };
        (&mut self.tracker, ends)
    }

    /// Process one packet: lifecycle, then stream data.
    pub fn handle_packet(
        &mut self,
        packet: &PacketView<'_>,
        sink: &mut impl DriverSink<E::Key, S>,
    ) -> Disposition {
        Frames::packet(self, packet, sink)
    }

    /// [`handle_packet`](Self::handle_packet) for each packet of `packets`, in order,
    /// with `each` told each packet's disposition: the same events and counters as that
    /// loop, faster when the flow table outgrows the CPU's caches (see
    /// [`FlowTracker::handle_batch`]).
    pub fn handle_batch(
        &mut self,
        packets: &[PacketView<'_>],
        sink: &mut impl DriverSink<E::Key, S>,
        each: impl FnMut(Disposition),
    ) {
        Frames::batch(self, packets, sink, each)
    }

    /// Move the clock and end timed-out flows (see [`FlowTracker::advance`]).
    pub fn advance(&mut self, now: Timestamp, sink: &mut impl DriverSink<E::Key, S>) {
        let (tracker, mut ends) = self.split(sink);
        tracker.advance(now, &mut |e| ends.on(e));
    }

    /// End every flow (see [`FlowTracker::finish`]); each stream is flushed first.
    pub fn finish(&mut self, sink: &mut impl DriverSink<E::Key, S>) {
        let (tracker, mut ends) = self.split(sink);
        tracker.finish(&mut |e| ends.on(e));
    }

    fn reassemble(
        &mut self,
        flow: FlowId,
        side: FlowSide,
        tcp: &crate::packet::TcpHeader,
        payload: &[u8],
        ts: Timestamp,
        sink: &mut impl DriverSink<E::Key, S>,
    ) {
        let Some((key, state)) = self.tracker.key_and_state_mut(flow) else { return };
        let (i, peer) = (side.index(), side.flip().index());
        if let StreamSlot::Anchors(anchors) = &mut state.streams {
            // Most TCP flows that never carry payload (scans, refused and unanswered
            // connections, SYN floods) need no stream state at all: remember where the
            // streams would start and stop there. A SYN flood of 2M sources cost 297
            // bytes per flow this way instead of 641 (tests/floods.rs; 277 now).
            let data_seq = tcp.seq.wrapping_add(u32::from(tcp.flags.syn()));
            let anchor = &mut anchors[i];
            if anchor.is_none() || tcp.flags.syn() {
                *anchor = Some(data_seq);
            }
            // An acknowledgment of exactly the peer's start acknowledges nothing.
            let acks_data = tcp.flags.ack() && anchors[peer].is_some_and(|start| tcp.ack != start);
            if payload.is_empty() && !tcp.flags.fin() && !acks_data {
                if tcp.flags.rst() {
                    sink.event(DriverEvent::Rst { key, side });
                }
                return;
            }
            state.streams = StreamSlot::Open(new_streams(
                &mut self.ends.pool,
                &mut self.factory,
                &mut self.streams_allocated,
                *anchors,
                &self.reassembly,
            ));
        }
        let Some(streams) = state.streams.open_mut() else { return };
        // What the packet changed in the peer's stream: only an acknowledgment after the
        // peer's FIN can change anything there, so usually nothing to account.
        let mut peer_change = None;
        // The acknowledgment first: it may close holes in the peer's stream.
        if tcp.flags.ack() {
            let r = &mut streams[peer];
            let peer_side = side.flip();
            if r.fin_offset().is_some() {
                let (was, buffered) = (*r.stats(), r.buffered_bytes());
                r.ack(tcp.ack, &mut |e| emit(sink, key, peer_side, e));
                peer_change =
                    Some(StreamChange::new(&was, r.stats(), buffered, r.buffered_bytes()));
            } else {
                // Before the peer's FIN an acknowledgment only moves the peer's acked end
                // (`Reassembler::ack`), so there is nothing to compare: without the
                // snapshot an in-order packet costs 15 instructions fewer (callgrind,
                // `drive_loop`: 759 -> 743 in `handle_whole`). Debug builds check it.
                #[cfg(debug_assertions)]
                let was = (*r.stats(), r.buffered_bytes());
                r.ack(tcp.ack, &mut |e| emit(sink, key, peer_side, e));
                #[cfg(debug_assertions)]
                debug_assert_eq!(was, (*r.stats(), r.buffered_bytes()), "ack before FIN");
            }
        }
        let r = &mut streams[i];
        // Most segments are an acknowledgment without payload or the stream's next bytes
        // with nothing buffered: all they change is the bytes delivered, so they skip the
        // snapshot and comparison below. Callgrind, `drive_loop 200`, keying and
        // `handle_whole`: 821 -> 732 instructions a packet.
        // (An early return rather than a shared tail: sharing the rest of this function
        // cost the fast path 30 instructions a packet.)
        if !tcp.flags.syn()
            && !tcp.flags.fin()
            && r.segment_next(tcp.seq, payload, &mut |e| emit(sink, key, side, e))
        {
            self.ends.stats.delivered_bytes += payload.len() as u64;
            if let Some(c) = peer_change {
                // An acknowledgment only releases buffered bytes: no new high watermark.
                self.account(flow, side.flip(), &c, key, ts, sink);
            }
            if tcp.flags.rst() {
                sink.event(DriverEvent::Rst { key, side });
            }
            return;
        }
        self.reassemble_segment(flow, side, tcp, payload, ts, peer_change, sink);
    }

    /// The rest of `reassemble` for a segment `segment_next` declined: through the
    /// whole reassembler, with the counters compared before and after. Out of line:
    /// inline, its registers and stack spilled into the fast path above (callgrind,
    /// `drive_loop 200`: 705 -> 697 instructions a packet once out of line).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn reassemble_segment(
        &mut self,
        flow: FlowId,
        side: FlowSide,
        tcp: &crate::packet::TcpHeader,
        payload: &[u8],
        ts: Timestamp,
        peer_change: Option<StreamChange>,
        sink: &mut impl DriverSink<E::Key, S>,
    ) {
        let i = side.index();
        let Some((key, state)) = self.tracker.key_and_state_mut(flow) else { return };
        let Some(streams) = state.streams.open_mut() else { return };
        let r = &mut streams[i];
        let (was, buffered) = (*r.stats(), r.buffered_bytes());
        // This side may use its own cap, or what is left of the global one, whichever is
        // smaller.
        let global_left = self.global_cap.saturating_sub(self.ends.stats.buffered_bytes as usize);
        let cfg = self
            .reassembly
            .with_max_buffer(self.reassembly.max_buffer.min(buffered.saturating_add(global_left)));
        let outcome =
            r.segment(tcp.seq, tcp.flags.syn(), tcp.flags.fin(), payload, &cfg, &mut |e| {
                emit(sink, key, side, e)
            });
        let own = Some(StreamChange::new(&was, r.stats(), buffered, r.buffered_bytes()));
        // Initiator first, as events and history letters have always come. Skipping the
        // peer when it did not change saves accounting an empty change on every packet.
        let changes = if i == 0 { [own, peer_change] } else { [peer_change, own] };
        for (j, c) in changes.iter().enumerate() {
            if let Some(c) = c {
                self.account(flow, FlowSide::at(j), c, key, ts, sink);
            }
        }
        self.ends.stats.buffered_high_watermark =
            self.ends.stats.buffered_high_watermark.max(self.ends.stats.buffered_bytes);
        if tcp.flags.fin() {
            sink.event(DriverEvent::Fin { key, side });
        }
        if tcp.flags.rst() {
            sink.event(DriverEvent::Rst { key, side });
        }
        if outcome == Outcome::Overflow && self.reassembly.overflow == OverflowPolicy::DropFlow {
            self.ends.stats.overflow_aborts += 1;
            let (tracker, mut ends) = self.split(sink);
            tracker.abort(flow, EndReason::BufferOverflow, &mut |e| ends.on(e));
        }
    }

    /// Account what one packet changed in side `s`'s stream: the driver's totals, the
    /// history's gap letters, the drop metrics, anomalies.
    fn account(
        &mut self,
        flow: FlowId,
        s: FlowSide,
        c: &StreamChange,
        key: E::Key,
        ts: Timestamp,
        sink: &mut impl DriverSink<E::Key, S>,
    ) {
        self.ends.stats.buffered_bytes =
            (self.ends.stats.buffered_bytes + c.buffered_after).saturating_sub(c.buffered_before);
        self.ends.stats.delivered_bytes += c.delivered;
        self.ends.stats.missed_bytes += c.missed;
        self.ends.obs.reassembly_dropped(s, c.dropped_ooo, c.dropped_oversize);
        for gaps in c.gaps_before + 1..=c.gaps_after {
            self.tracker.scaled_history(flow, s, b'G', gaps);
        }
        if self.ends.emit_anomalies {
            let anomaly =
                |kind| DriverEvent::Flow(FlowEvent::Anomaly { key, side: Some(s), kind, ts });
            if c.ooo {
                self.ends.obs.anomaly(AnomalyKind::OutOfOrderSegment);
                sink.event(anomaly(AnomalyKind::OutOfOrderSegment));
            }
            if c.cap_hit {
                self.ends.obs.anomaly(AnomalyKind::BufferOverflow);
                sink.event(anomaly(AnomalyKind::BufferOverflow));
            }
        }
    }
}

impl<E: FlowExtractor, S, R: ReassemblerFactory, Sk: DriverSink<E::Key, S>> Frames<Sk>
    for FlowDriver<E, S, R>
{
    type Extractor = E;
    type State = FlowState<S, R::Reassembler>;

    #[inline(always)]
    fn tracker(&self) -> &Tracker<E, S, R> {
        &self.tracker
    }

    #[inline(always)]
    fn tracker_mut(&mut self) -> &mut Tracker<E, S, R> {
        &mut self.tracker
    }

    /// Track and reassemble a whole packet (a frame, or a datagram rebuilt from
    /// fragments, counted already) and the tunnels inside it.
    // Never inlined, so frames and rebuilt datagrams share one copy, in which
    // `reassemble` has its single call site and stays inline.
    #[inline(never)]
    fn whole(
        &mut self,
        packet: &PacketView<'_>,
        extracted: &Keyed<E::Key>,
        count: bool,
        hint: u32,
        sink: &mut Sk,
    ) -> Disposition {
        let (tracker, mut ends) = self.split(sink);
        let disposition = tracker.handle_keyed(packet, extracted, count, hint, &mut |e| ends.on(e));
        let (Disposition::Tracked { flow, side, .. }, Ok(ex)) = (disposition, extracted) else {
            return disposition;
        };
        // One call site for `reassemble`, whether the TCP segment is the frame's own or
        // was found inside tunnels: with a second one (in the tunnel path) LLVM stopped
        // inlining it, a call per TCP packet (benches/driver.rs, in-order: +8%).
        let datagram: Option<Datagram>;
        let (flow, side, tcp, payload) = match ex.headers.transport {
            Transport::Tcp(tcp) => {
                datagram = None;
                (flow, side, tcp, ex.headers.payload(packet.frame))
            }
            // Tunnels: each layer inside is a flow of its own. Only UDP and the IP
            // protocols tunnels use can carry one.
            _ => {
                let (tracker, mut ends) = self.split(sink);
                let found =
                    tracker.follow_tunnels(packet, &ex.headers, flow, 0, &mut |e| ends.on(e));
                let Some(inner) = found else { return disposition };
                datagram = inner.datagram;
                let frame = datagram.as_ref().map_or(packet.frame, |d| d.frame.as_slice());
                (inner.flow, inner.side, inner.tcp, inner.headers.payload(frame))
            }
        };
        self.reassemble(flow, side, &tcp, payload, packet.ts, sink);
        if let Some(d) = datagram {
            self.tracker.recycle_datagram(d);
        }
        disposition
    }
}

/// Stream state for a flow's first segment to reassemble, from the pool or the factory,
/// with the anchors replayed: an empty SYN-flagged segment one before each start. Once
/// per TCP flow, out of line: inline, its registers cost the per-packet path 3
/// instructions (callgrind, `drive_loop 200`: 653 -> 650 a packet; 648 before
/// reassemblers came from a factory).
#[cold]
#[inline(never)]
fn new_streams<R: ReassemblerFactory>(
    pool: &mut Vec<Box<Streams<R::Reassembler>>>,
    factory: &mut R,
    allocated: &mut usize,
    anchors: [Option<u32>; 2],
    config: &ReassemblyConfig,
) -> Box<Streams<R::Reassembler>> {
    let mut s = pool.pop().unwrap_or_else(|| {
        *allocated += 1;
        Box::new([factory.new_reassembler(), factory.new_reassembler()])
    });
    for (r, a) in s.iter_mut().zip(anchors) {
        if let Some(start) = a {
            r.segment(start.wrapping_sub(1), true, false, &[], config, &mut |_| {});
        }
    }
    s
}

/// What one packet changed in one side's stream.
#[derive(Copy, Clone, Debug)]
struct StreamChange {
    buffered_before: u64,
    buffered_after: u64,
    delivered: u64,
    missed: u64,
    gaps_before: u64,
    gaps_after: u64,
    ooo: bool,
    cap_hit: bool,
    dropped_ooo: u64,
    dropped_oversize: u64,
}

impl StreamChange {
    fn new(
        was: &StreamStats,
        now: &StreamStats,
        buffered_before: usize,
        buffered_after: usize,
    ) -> Self {
        StreamChange {
            buffered_before: buffered_before as u64,
            buffered_after: buffered_after as u64,
            delivered: now.delivered_bytes - was.delivered_bytes,
            missed: now.missed_bytes - was.missed_bytes,
            gaps_before: was.gaps,
            gaps_after: now.gaps,
            ooo: now.ooo_segments > was.ooo_segments,
            cap_hit: now.cap_hits > was.cap_hits,
            dropped_ooo: now.dropped_ooo - was.dropped_ooo,
            dropped_oversize: now.dropped_oversize_bytes - was.dropped_oversize_bytes,
        }
    }
}

/// Copy a side's reassembly counters into the side's flow statistics (the tracker leaves
/// them zero): at the flow's end, and in snapshots.
fn copy_stream_stats(s: &mut SideStats, rs: &StreamStats) {
    s.missed_bytes = rs.missed_bytes;
    s.dropped_ooo = rs.dropped_ooo;
    s.dropped_oversize_bytes = rs.dropped_oversize_bytes;
    s.high_watermark_bytes = rs.high_watermark_bytes;
    s.inconsistent_segments = rs.inconsistent_segments;
}

/// Forward one stream event of `side` to the driver's sink.
fn emit<K: Copy, S>(sink: &mut impl DriverSink<K, S>, key: K, side: FlowSide, e: StreamEvent<'_>) {
    match e {
        StreamEvent::Data { offset, bytes } => {
            sink.event(DriverEvent::Data { key, side, offset, bytes })
        }
        StreamEvent::Gap { offset, len } => sink.event(DriverEvent::Gap { key, side, offset, len }),
    }
}

/// Turns the tracker's events into the driver's: flushes the streams of ending flows,
/// adds their reassembly counters, returns their state to the pool.
struct EndHandler<'d, Sk, A> {
    ends: &'d mut Ends<A>,
    sink: &'d mut Sk,
}

impl<Sk, A: Reassembler> EndHandler<'_, Sk, A> {
    fn on<K: Copy, S>(&mut self, event: FlowEvent<K, FlowState<S, A>>)
    where
        Sk: DriverSink<K, S>,
    {
        match event {
            FlowEvent::Started { key, initiator, orientation, l4, ts, serial, parent } => {
                self.sink.event(DriverEvent::Flow(FlowEvent::Started {
                    key,
                    initiator,
                    orientation,
                    l4,
                    ts,
                    serial,
                    parent,
                }))
            }
            FlowEvent::Established { key, ts } => {
                self.sink.event(DriverEvent::Flow(FlowEvent::Established { key, ts }))
            }
            FlowEvent::Anomaly { key, side, kind, ts } => {
                self.sink.event(DriverEvent::Flow(FlowEvent::Anomaly { key, side, kind, ts }))
            }
            FlowEvent::Ended {
                key,
                reason,
                l4,
                initiator,
                mut stats,
                conn_state,
                mut history,
                ts,
                serial,
                tunnel_parents,
                state,
            } => {
                if reason == EndReason::Evicted && self.ends.emit_anomalies {
                    let kind = AnomalyKind::FlowTableEviction;
                    self.ends.obs.anomaly(kind);
                    self.sink.event(DriverEvent::Flow(FlowEvent::Anomaly {
                        key,
                        side: None,
                        kind,
                        ts,
                    }));
                }
                if let StreamSlot::Open(mut streams) = state.streams {
                    for (i, side) in
                        [FlowSide::Initiator, FlowSide::Responder].into_iter().enumerate()
                    {
                        let r = &mut streams[i];
                        self.ends.stats.buffered_bytes = self
                            .ends
                            .stats
                            .buffered_bytes
                            .saturating_sub(r.buffered_bytes() as u64);
                        let was = *r.stats();
                        let sink = &mut *self.sink;
                        r.finish(&mut |e| emit(sink, key, side, e));
                        let rs = *r.stats();
                        self.ends.stats.missed_bytes += rs.missed_bytes - was.missed_bytes;
                        self.ends.stats.delivered_bytes += rs.delivered_bytes - was.delivered_bytes;
                        for gaps in was.gaps + 1..=rs.gaps {
                            if is_power_of_ten(gaps) {
                                let c = if side == FlowSide::Initiator { b'G' } else { b'g' };
                                history.push(c);
                            }
                        }
                        let s: &mut SideStats = match side {
                            FlowSide::Initiator => &mut stats.initiator,
                            FlowSide::Responder => &mut stats.responder,
                        };
                        copy_stream_stats(s, &rs);
                        self.ends.obs.high_watermark(side, rs.high_watermark_bytes);
                        r.reset();
                    }
                    self.ends.pool.push(streams);
                }
                let user = state.user;
                self.sink.event(DriverEvent::Flow(FlowEvent::Ended {
                    key,
                    reason,
                    l4,
                    initiator,
                    stats,
                    conn_state,
                    history,
                    ts,
                    serial,
                    tunnel_parents,
                    state: user,
                }));
            }
        }
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    if n == 0 {
        return false;
    }
    while n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests;
