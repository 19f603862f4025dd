//! TCP stream reassembly for one side of a connection.
//!
//! [`Reassembler`] is what the [`FlowDriver`](crate::driver::FlowDriver) asks of a
//! per-side reassembler, and [`ReassemblerFactory`] makes them, so users can plug their
//! own. The default, [`DefaultReassembler`], turns the segments one endpoint sent, in
//! whatever order they were captured, into that endpoint's byte stream, delivered in
//! order and exactly once:
//!
//! - **Sequence space.** 32-bit sequence numbers are unwrapped into 64-bit stream offsets
//!   anchored at the SYN's ISN + 1 (or at the first segment seen, when the SYN was
//!   missed). The SYN and FIN consume sequence space; wrap-around at 2^32 is seamless.
//! - **Zero copy in order.** A segment that starts at or before the next expected offset
//!   is handed out as a slice of the packet ([`StreamEvent::Data`]); bytes already
//!   delivered are trimmed, never delivered twice (and counted as retransmitted).
//! - **Bounded out of order.** Data ahead of a hole is copied into a per-side buffer of
//!   at most [`ReassemblyConfig::max_buffer`] bytes (and [`MAX_RANGES`] ranges) that coalesces adjacent and
//!   overlapping ranges; when the hole fills, it is delivered in order.
//! - **Overlaps** resolve by [`OverlapPolicy`]: first-arrived bytes win by default
//!   (what most end hosts do, and what keeps an attacker from rewriting bytes an IDS has
//!   already buffered); last-arrived is the alternative.
//! - **Gaps.** A hole that cannot be filled — the buffer is full under
//!   [`OverflowPolicy::SlidingWindow`], or the stream ends with data buffered beyond it —
//!   is skipped and reported as [`StreamEvent::Gap`] with its offset and length, counted
//!   in missed bytes (Zeek's `missed_bytes`), and delivery continues after it. A stream
//!   never wedges.
//!
//! The reassembler owns no clock and does no I/O; it allocates only to buffer
//! out-of-order data (never for in-order data), within its cap.

mod buffer;

use crate::tracker::tcp::unwrap_near;
use buffer::{OutOfOrder, Recent};

pub use crate::tracker::{OverflowPolicy, OverlapPolicy};

/// Reassembly limits and policies.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReassemblyConfig {
    /// Most out-of-order bytes buffered per side (1 MiB).
    pub max_buffer: usize,
    /// Overlap resolution.
    pub overlap: OverlapPolicy,
    /// Behaviour at the cap.
    pub overflow: OverflowPolicy,
    /// Most recently delivered bytes kept per side to compare retransmissions against
    /// (0: off, the default). See `FlowTrackerConfig::retransmit_check_bytes`.
    pub retransmit_check: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_buffer: 1 << 20,
            overlap: OverlapPolicy::FirstWins,
            overflow: OverflowPolicy::SlidingWindow,
            retransmit_check: 0,
        }
    }
}

impl ReassemblyConfig {
    /// Set the per-side buffer cap.
    pub fn with_max_buffer(mut self, bytes: usize) -> Self {
        self.max_buffer = bytes;
        self
    }

    /// Set the overlap policy.
    pub fn with_overlap(mut self, p: OverlapPolicy) -> Self {
        self.overlap = p;
        self
    }

    /// Set the overflow policy.
    pub fn with_overflow(mut self, p: OverflowPolicy) -> Self {
        self.overflow = p;
        self
    }

    /// Set how many recently delivered bytes per side are kept to check retransmissions.
    pub fn with_retransmit_check(mut self, bytes: usize) -> Self {
        self.retransmit_check = bytes;
        self
    }
}

/// Segments starting further than this beyond the next expected byte are implausible
/// (TCP's largest scaled window is 1 GiB) and dropped as out of order.
pub const MAX_AHEAD: u64 = 1 << 30;

/// Most disjoint ranges one side buffers. Each range costs bookkeeping beyond its bytes
/// (about 64 bytes with its allocation) and the work per out-of-order segment grows with
/// the count, so a flood of 1-byte segments each beyond its own hole would otherwise
/// cost ~64x the byte cap in memory and a scan per packet. Real loss rarely leaves more
/// than a few hundred holes in flight: a full 1 MiB buffer of 1460-byte segments with
/// every other one lost holds 359. Reaching it is a cap hit, handled like the byte cap.
pub const MAX_RANGES: usize = 1024;

/// A piece of the reassembled stream.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEvent<'a> {
    /// Bytes at `offset` (relative to the stream start), delivered once and in order.
    Data {
        /// Stream offset of the first byte.
        offset: u64,
        /// The bytes: a slice of the packet when in order, of the buffer otherwise.
        bytes: &'a [u8],
    },
    /// Bytes that were never seen and are skipped.
    Gap {
        /// Stream offset of the first missing byte.
        offset: u64,
        /// How many bytes are missing.
        len: u64,
    },
}

/// What a segment did to the reassembler.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Handled.
    Ok,
    /// The buffer cap was hit under `OverflowPolicy::DropFlow`: the segment was discarded
    /// and the caller should stop reassembling this flow.
    Overflow,
}

/// Counters for one side's stream.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Bytes delivered as `Data`.
    pub delivered_bytes: u64,
    /// Bytes skipped as gaps (Zeek's `missed_bytes`).
    pub missed_bytes: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Segments with payload that was wholly or partly delivered already.
    pub retransmitted_segments: u64,
    /// Segments that arrived ahead of a hole (buffered or dropped).
    pub ooo_segments: u64,
    /// Segments carrying a byte that differs from the byte received before at the same
    /// offset, where that byte is still known: buffered out of order, or delivered within
    /// the last [`ReassemblyConfig::retransmit_check`] bytes and not before a gap.
    /// Counted once per segment, under either overlap policy.
    pub inconsistent_segments: u64,
    /// Segments dropped as too far ahead ([`MAX_AHEAD`]).
    pub dropped_ooo: u64,
    /// Bytes discarded at the buffer cap under `DropFlow`.
    pub dropped_oversize_bytes: u64,
    /// Times the buffer cap forced a hole to be skipped or a segment discarded.
    pub cap_hits: u64,
    /// Peak bytes buffered.
    pub high_watermark_bytes: u64,
}

/// One side's stream reassembly, as the [`FlowDriver`](crate::driver::FlowDriver) drives
/// it: the side's segments and its peer's acknowledgments in, [`StreamEvent`]s out.
///
/// Contract (the driver relies on it; [`DefaultReassembler`] keeps it and the
/// `reassembly_oracle` fuzz target and property tests check it):
///
/// - Every stream offset is reported at most once, in increasing order, as
///   [`StreamEvent::Data`] or [`StreamEvent::Gap`]; [`finish`](Self::finish) reports
///   everything still outstanding, so after it the stream is fully accounted.
/// - [`stats`](Self::stats) counters only grow between [`reset`](Self::reset)s, and
///   `delivered_bytes`/`missed_bytes`/`gaps` agree with the events reported.
/// - [`buffered_bytes`](Self::buffered_bytes) never exceeds the `max_buffer` of the
///   configuration handed to the call that buffered them: the driver narrows it to what
///   is left of its global cap, and that is how the global cap holds.
/// - Allocation happens only to buffer data out of order, or once for storage a
///   reassembler keeps across [`reset`](Self::reset)s (the default's retransmission
///   window): the driver pools reassemblers, so one that allocates per stream defeats
///   the driver's zero-allocation guarantee.
///
/// Implementations are driven by the driver's thread only; they need not be `Send`
/// unless the driver must be.
pub trait Reassembler {
    /// Feed one segment of this side: its sequence number, SYN and FIN flags and payload.
    /// Bytes that continue the stream (and buffered bytes a segment releases) go to `out`
    /// before this returns. `config` holds the limits for this call (the driver lowers
    /// `max_buffer` to what is left of its global cap).
    fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        config: &ReassemblyConfig,
        out: &mut impl FnMut(StreamEvent<'_>),
    ) -> Outcome;

    /// An optional fast path the driver tries first for a segment without SYN or FIN.
    /// Return `true` only when the segment was fully handled and the only counter it
    /// changed is `delivered_bytes`, by exactly the bytes delivered to `out` (an
    /// acknowledgment-only segment of an anchored stream, or the very next bytes with
    /// nothing buffered); the driver then skips comparing the counters before and after.
    /// Return `false`, having changed nothing, for anything else: the driver then calls
    /// [`segment`](Self::segment). The default declines every segment.
    #[inline]
    fn segment_next(
        &mut self,
        seq: u32,
        payload: &[u8],
        out: &mut impl FnMut(StreamEvent<'_>),
    ) -> bool {
        let _ = (seq, payload, out);
        false
    }

    /// The peer acknowledged up to sequence number `ack`. It may report gaps (and release
    /// buffered data) when it shows that data was sent that will never be seen.
    fn ack(&mut self, ack: u32, out: &mut impl FnMut(StreamEvent<'_>));

    /// End of the stream: report everything still outstanding (buffered data and the
    /// holes before it, data known to have been sent but never seen).
    fn finish(&mut self, out: &mut impl FnMut(StreamEvent<'_>));

    /// Counters so far.
    fn stats(&self) -> &StreamStats;

    /// Bytes buffered out of order now.
    fn buffered_bytes(&self) -> usize;

    /// The FIN's stream offset, once one was seen. The driver hands this side's
    /// acknowledgments over with counters compared only once it returns `Some`, so an
    /// [`ack`](Self::ack) must change nothing observable before the FIN (debug builds
    /// assert it).
    fn fin_offset(&self) -> Option<u64>;

    /// The next stream offset to be reported.
    fn next_offset(&self) -> u64;

    /// Forget the stream, for reuse by another flow. What memory it keeps for reuse is
    /// up to the implementation; it counts toward nothing the driver reports.
    fn reset(&mut self);
}

/// Makes the per-side [`Reassembler`]s the [`FlowDriver`](crate::driver::FlowDriver)
/// gives each TCP flow that has something to reassemble: two per flow, made only when
/// its pool of ended flows' reassemblers is empty, so at most two per TCP flow live at
/// once.
///
/// A reassembler of your own, here one that wraps the default and counts the segments it
/// is fed, goes into a driver like this:
///
/// ```
/// use flowscope::driver::FlowDriver;
/// use flowscope::extract::FiveTuple;
/// use flowscope::reassembly::{
///     DefaultReassembler, Outcome, Reassembler, ReassemblerFactory, ReassemblyConfig,
///     StreamEvent, StreamStats,
/// };
/// use flowscope::tracker::FlowTrackerConfig;
///
/// #[derive(Default)]
/// struct Counting {
///     inner: DefaultReassembler,
///     segments: u64,
/// }
///
/// impl Reassembler for Counting {
///     fn segment(
///         &mut self,
///         seq: u32,
///         syn: bool,
///         fin: bool,
///         payload: &[u8],
///         config: &ReassemblyConfig,
///         out: &mut impl FnMut(StreamEvent<'_>),
///     ) -> Outcome {
///         self.segments += 1;
///         self.inner.segment(seq, syn, fin, payload, config, out)
///     }
///     fn ack(&mut self, ack: u32, out: &mut impl FnMut(StreamEvent<'_>)) {
///         self.inner.ack(ack, out)
///     }
///     fn finish(&mut self, out: &mut impl FnMut(StreamEvent<'_>)) {
///         self.inner.finish(out)
///     }
///     fn stats(&self) -> &StreamStats {
///         self.inner.stats()
///     }
///     fn buffered_bytes(&self) -> usize {
///         self.inner.buffered_bytes()
///     }
///     fn fin_offset(&self) -> Option<u64> {
///         self.inner.fin_offset()
///     }
///     fn next_offset(&self) -> u64 {
///         self.inner.next_offset()
///     }
///     fn reset(&mut self) {
///         self.inner.reset();
///         self.segments = 0;
///     }
/// }
///
/// struct MakeCounting;
///
/// impl ReassemblerFactory for MakeCounting {
///     type Reassembler = Counting;
///     fn new_reassembler(&mut self) -> Counting {
///         Counting::default()
///     }
/// }
///
/// let driver: FlowDriver<FiveTuple, (), MakeCounting> = FlowDriver::with_factory(
///     FiveTuple::new(),
///     FlowTrackerConfig::default(),
///     MakeCounting,
///     |_, _| (),
/// );
/// # let _ = driver;
/// ```
pub trait ReassemblerFactory {
    /// What it makes.
    type Reassembler: Reassembler;

    /// A reassembler that has seen nothing.
    fn new_reassembler(&mut self) -> Self::Reassembler;
}

/// Makes [`DefaultReassembler`]s.
#[derive(Copy, Clone, Debug, Default)]
pub struct DefaultReassemblerFactory;

impl ReassemblerFactory for DefaultReassemblerFactory {
    type Reassembler = DefaultReassembler;

    fn new_reassembler(&mut self) -> DefaultReassembler {
        DefaultReassembler::new()
    }
}

/// The default reassembler: zero-copy in order, bounded out-of-order buffering, gaps (see
/// the [module docs](self)).
///
/// Invariants: every offset below `next` has been delivered or reported as a gap,
/// exactly once; the out-of-order buffer holds only bytes at offsets `> next`, in
/// disjoint, non-adjacent ranges, at most `max_buffer` bytes and [`MAX_RANGES`] ranges.
#[derive(Debug, Default)]
pub struct DefaultReassembler {
    /// Sequence number of stream offset 0.
    base: u32,
    anchored: bool,
    /// Next offset to deliver.
    next: u64,
    /// Largest offset any segment reached (reference for unwrapping).
    seen_end: u64,
    fin_offset: FinAt,
    /// Highest offset the peer acknowledged (data up to it was sent, seen or not).
    acked_end: u64,
    ooo: OutOfOrder,
    // Boxed: 8 bytes in every stream state when off (the default), instead of 32.
    recent: Option<Box<Recent>>,
    stats: StreamStats,
}

/// The stream offset of a side's FIN, once one was seen (the first one counts): an
/// `Option<u64>` in 8 bytes instead of 16, with `u64::MAX`, an offset no stream reaches,
/// for none.
#[derive(Copy, Clone, Debug)]
struct FinAt(u64);

impl Default for FinAt {
    fn default() -> Self {
        FinAt(u64::MAX)
    }
}

impl FinAt {
    #[inline]
    fn get(self) -> Option<u64> {
        (self.0 != u64::MAX).then_some(self.0)
    }

    /// Record a FIN at `offset` unless one was recorded already.
    #[inline]
    fn set_once(&mut self, offset: u64) {
        if self.0 == u64::MAX {
            self.0 = offset;
        }
    }
}

impl DefaultReassembler {
    /// A reassembler that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Reassembler for DefaultReassembler {
    fn stats(&self) -> &StreamStats {
        &self.stats
    }

    fn next_offset(&self) -> u64 {
        self.next
    }

    fn buffered_bytes(&self) -> usize {
        self.ooo.len()
    }

    fn fin_offset(&self) -> Option<u64> {
        self.fin_offset.get()
    }

    /// See [`Reassembler::segment`]; in-order bytes go out as slices of `payload`.
    fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        config: &ReassemblyConfig,
        out: &mut impl FnMut(StreamEvent<'_>),
    ) -> Outcome {
        if self.recent.as_ref().map_or(0, |r| r.window()) != config.retransmit_check {
            self.recent = (config.retransmit_check > 0)
                .then(|| Box::new(Recent::new(config.retransmit_check, self.next)));
        }
        // The first data byte follows the SYN's sequence number.
        let data_seq = seq.wrapping_add(u32::from(syn));
        if !self.anchored {
            self.base = data_seq;
            self.anchored = true;
        } else if syn && self.next == 0 && self.seen_end == 0 {
            // A SYN seen after a segment that anchored nothing yet: re-anchor on it.
            self.base = data_seq;
        }
        let reference = self.seen_end.max(self.next);
        let delta = data_seq.wrapping_sub(self.base);
        let mut payload = payload;
        let start = if (delta as i32) < 0 && reference < 1 << 31 {
            // Before the anchor (picked up mid-stream, then older data arrived): only
            // what reaches offset 0 or beyond can still be delivered.
            let before = u64::from(delta.wrapping_neg());
            match payload.get(before as usize..) {
                Some(rest) if !rest.is_empty() => {
                    payload = rest;
                    0
                }
                _ => {
                    // A FIN right at the anchor still ends the stream there (found by
                    // the reassembly_oracle fuzz target: without it, an acknowledgment of
                    // that FIN later read as one missing byte).
                    if fin && payload.len() as u64 == before {
                        self.fin_offset.set_once(0);
                    }
                    if !payload.is_empty() {
                        self.stats.retransmitted_segments += 1;
                    }
                    return Outcome::Ok;
                }
            }
        } else {
            unwrap_near(delta, reference)
        };
        let len = payload.len() as u64;
        let end = start + len;
        if fin {
            self.fin_offset.set_once(end);
        }
        if len == 0 {
            return Outcome::Ok;
        }
        self.seen_end = self.seen_end.max(end);
        if end <= self.next {
            self.stats.retransmitted_segments += 1;
            if self.rewrites_delivered(start, payload) {
                self.stats.inconsistent_segments += 1;
            }
            return Outcome::Ok;
        }
        if start <= self.next {
            let skip = (self.next - start) as usize;
            if start < self.next {
                self.stats.retransmitted_segments += 1;
            }
            let (old, new) = payload.split_at(skip);
            if self.rewrites_delivered(start, old) || self.ooo.differs(self.next, new) {
                self.stats.inconsistent_segments += 1;
            }
            self.deliver_in_order(new, config, out);
            return Outcome::Ok;
        }
        // Ahead of a hole.
        self.stats.ooo_segments += 1;
        if self.ooo.differs(start, payload) {
            self.stats.inconsistent_segments += 1;
        }
        if start - self.next > MAX_AHEAD {
            self.stats.dropped_ooo += 1;
            return Outcome::Ok;
        }
        if self.over_cap(start, end, config) {
            self.stats.cap_hits += 1;
            match config.overflow {
                OverflowPolicy::DropFlow => {
                    self.stats.dropped_oversize_bytes += len;
                    return Outcome::Overflow;
                }
                OverflowPolicy::SlidingWindow => {
                    // Skip holes until the segment fits, or until it is next in line.
                    while self.over_cap(start, end, config) && !self.ooo.is_empty() {
                        self.skip_first_hole(out);
                    }
                    if start > self.next && self.over_cap(start, end, config) {
                        // Still too big on its own: skip straight to it.
                        self.gap(start - self.next, out);
                    }
                    if start <= self.next {
                        let skip = (self.next.saturating_sub(start)) as usize;
                        if skip < payload.len() {
                            self.deliver_in_order(&payload[skip..], config, out);
                        }
                        return Outcome::Ok;
                    }
                }
            }
        }
        self.ooo.insert(start, payload, config.overlap == OverlapPolicy::LastWins);
        self.stats.high_watermark_bytes =
            self.stats.high_watermark_bytes.max(self.ooo.len() as u64);
        Outcome::Ok
    }

    /// Takes a segment without payload (which changes nothing once the stream is
    /// anchored) and the very next bytes of the stream with nothing buffered (which are
    /// delivered and counted, nothing else).
    ///
    /// The driver uses it to skip its before-and-after comparison of the stream's
    /// counters on the commonest packets (`drive_loop`: see `FlowDriver::reassemble`).
    #[inline]
    fn segment_next(
        &mut self,
        seq: u32,
        payload: &[u8],
        out: &mut impl FnMut(StreamEvent<'_>),
    ) -> bool {
        if !self.anchored {
            return false;
        }
        if payload.is_empty() {
            return true;
        }
        // Nothing seen past `next` (so nothing buffered either: buffered bytes lie past
        // it): a segment whose low 32 bits are `next`'s starts exactly at `next`, the
        // unwrapping reference.
        if self.seen_end != self.next || seq.wrapping_sub(self.base) != self.next as u32 {
            return false;
        }
        debug_assert!(self.ooo.is_empty());
        self.seen_end += payload.len() as u64;
        self.emit(payload, out);
        true
    }

    /// The peer acknowledged up to sequence number `ack`. Everything before it was sent,
    /// whether or not the capture holds it, so [`finish`](Self::finish) reports what is
    /// still missing then as a gap. Once the peer has acknowledged this side's FIN the
    /// stream is complete for the receiver: the holes before the FIN are reported right
    /// away (where Zeek reports its content gap). Before that, an acknowledgment alone
    /// never skips data: captures often hold an ACK before the data it acknowledges,
    /// and the data still arrives.
    fn ack(&mut self, ack: u32, out: &mut impl FnMut(StreamEvent<'_>)) {
        if !self.anchored {
            return;
        }
        let delta = ack.wrapping_sub(self.base);
        // The commonest acknowledgment moves `acked_end` forward by less than 2 GiB to at
        // most what was sent (or repeats it): with less than 2 GiB between the two, the
        // low 32 bits alone place it, and `ack_unwrapped` would find the same offset (a
        // property test holds them equal). Callgrind, `drive_loop 200`: 725 -> 717
        // instructions a packet.
        let sent = self.seen_end.max(self.next);
        if let Some(span) = sent.checked_sub(self.acked_end).filter(|&s| s < 1 << 31) {
            let step = delta.wrapping_sub(self.acked_end as u32);
            if u64::from(step) <= span {
                self.acked_end += u64::from(step);
                self.release_after_fin(out);
                return;
            }
        }
        self.ack_unwrapped(delta, out);
    }

    /// End of the stream: [`flush`](Self::flush), then report as a gap whatever is
    /// known to have been sent but was never seen: up to the FIN, or without a FIN up to
    /// the peer's last acknowledgment.
    fn finish(&mut self, out: &mut impl FnMut(StreamEvent<'_>)) {
        self.flush(out);
        let end = self.fin_offset.get().unwrap_or(self.acked_end);
        if end > self.next {
            self.gap(end - self.next, out);
        }
    }

    /// Forget everything (for reuse by another flow), freeing the out-of-order buffer's
    /// storage: a pooled reassembler holds no memory beyond its own struct and its
    /// retransmission window ([`ReassemblyConfig::retransmit_check`] bytes).
    fn reset(&mut self) {
        // The retransmission window's storage stays (it is what the configuration asks
        // for, per side); everything else goes.
        let mut recent = self.recent.take();
        if let Some(r) = &mut recent {
            r.forget_below(0);
        }
        *self = DefaultReassembler { recent, ..DefaultReassembler::default() };
    }
}

impl DefaultReassembler {
    /// True when `data`, placed at `start`, differs from delivered bytes the retransmission
    /// window still holds (never when the window is off).
    fn rewrites_delivered(&self, start: u64, data: &[u8]) -> bool {
        self.recent.as_ref().is_some_and(|r| r.differs(start, data, self.next))
    }

    /// `ack` for any acknowledgment of an anchored stream, `delta` past `base`, through
    /// 64-bit offsets.
    #[inline(never)]
    fn ack_unwrapped(&mut self, delta: u32, out: &mut impl FnMut(StreamEvent<'_>)) {
        let sent = self.seen_end.max(self.next);
        if (delta as i32) < 0 && sent < 1 << 31 {
            return;
        }
        let off = unwrap_near(delta, sent.max(self.acked_end));
        // An acknowledgment far beyond anything sent is broken, not a gap.
        if off > sent + MAX_AHEAD {
            return;
        }
        self.acked_end = self.acked_end.max(off);
        self.release_after_fin(out);
    }

    /// Once the peer acknowledged this side's FIN, skip the holes before it.
    #[inline]
    fn release_after_fin(&mut self, out: &mut impl FnMut(StreamEvent<'_>)) {
        if let Some(fin) = self.fin_offset.get() {
            if self.acked_end > fin {
                self.advance_to(fin, out);
            }
        }
    }

    /// Would buffering `[start, end)` pass the byte cap or the range cap?
    fn over_cap(&self, start: u64, end: u64, config: &ReassemblyConfig) -> bool {
        self.ooo.len() + self.ooo.uncovered(start, end) > config.max_buffer
            || (self.ooo.ranges() >= MAX_RANGES && self.ooo.is_separate(start, end))
    }

    /// Deliver or skip everything below `end`.
    fn advance_to(&mut self, end: u64, out: &mut impl FnMut(StreamEvent<'_>)) {
        while self.next < end {
            match self.ooo.first_start() {
                Some(b) if b <= self.next => {
                    self.release_front(out);
                }
                Some(b) => self.gap(b.min(end) - self.next, out),
                None => self.gap(end - self.next, out),
            }
        }
        while self.ooo.first_start().is_some_and(|b| b <= self.next) {
            self.release_front(out);
        }
    }

    /// Skip every remaining hole and deliver everything buffered (the buffer is empty
    /// afterwards).
    pub fn flush(&mut self, out: &mut impl FnMut(StreamEvent<'_>)) {
        while !self.ooo.is_empty() {
            self.skip_first_hole(out);
        }
    }

    /// Deliver `bytes`, which start exactly at `next`, then whatever buffered data they
    /// join up with. Under first-wins, buffered bytes inside the new range replace the
    /// new ones (they arrived first).
    ///
    /// With nothing buffered, the common case, the bytes simply go out, inline: as a call
    /// (which also called the buffer's `discard_below`) it cost about 45 instructions a
    /// data segment (callgrind, `drive_loop`: the driver's `handle_whole` 666 -> 642 a
    /// packet, half of them data).
    #[inline]
    fn deliver_in_order(
        &mut self,
        bytes: &[u8],
        config: &ReassemblyConfig,
        out: &mut impl FnMut(StreamEvent<'_>),
    ) {
        if !self.ooo.is_empty() {
            self.deliver_joining(bytes, config, out);
        } else if !bytes.is_empty() {
            self.emit(bytes, out);
        }
    }

    /// `deliver_in_order` with something buffered.
    #[inline(never)]
    fn deliver_joining(
        &mut self,
        mut bytes: &[u8],
        config: &ReassemblyConfig,
        out: &mut impl FnMut(StreamEvent<'_>),
    ) {
        let first_wins = config.overlap == OverlapPolicy::FirstWins;
        while !bytes.is_empty() {
            let end = self.next + bytes.len() as u64;
            match self.ooo.first_start() {
                Some(b) if first_wins && b < end => {
                    // New bytes up to the buffered range, then the buffered range.
                    let take = (b - self.next) as usize;
                    if take > 0 {
                        self.emit(&bytes[..take], out);
                    }
                    bytes = &bytes[take..];
                    let released = self.release_front(out);
                    let consumed = (released as usize).min(bytes.len());
                    bytes = &bytes[consumed..];
                }
                _ => {
                    self.emit(bytes, out);
                    bytes = &[];
                    // Buffered bytes the new data covered are superseded; drop them.
                    self.ooo.discard_below(self.next);
                }
            }
        }
        // Deliver buffered data that now continues the stream.
        while self.ooo.first_start().is_some_and(|b| b <= self.next) {
            self.release_front(out);
        }
    }

    /// Deliver the first buffered range (which must start at or before `next`); returns
    /// how far `next` advanced.
    fn release_front(&mut self, out: &mut impl FnMut(StreamEvent<'_>)) -> u64 {
        let before = self.next;
        if let Some((start, data)) = self.ooo.pop_front() {
            let skip = self.next.saturating_sub(start) as usize;
            if let Some(rest) = data.get(skip..) {
                if !rest.is_empty() {
                    self.emit(rest, out);
                }
            }
            self.ooo.recycle(data);
        }
        self.next - before
    }

    fn skip_first_hole(&mut self, out: &mut impl FnMut(StreamEvent<'_>)) {
        if let Some(b) = self.ooo.first_start() {
            if b > self.next {
                self.gap(b - self.next, out);
            }
            while self.ooo.first_start().is_some_and(|b| b <= self.next) {
                self.release_front(out);
            }
        }
    }

    fn emit(&mut self, bytes: &[u8], out: &mut impl FnMut(StreamEvent<'_>)) {
        if let Some(r) = &mut self.recent {
            r.record(self.next, bytes);
        }
        out(StreamEvent::Data { offset: self.next, bytes });
        self.next += bytes.len() as u64;
        self.stats.delivered_bytes += bytes.len() as u64;
    }

    fn gap(&mut self, len: u64, out: &mut impl FnMut(StreamEvent<'_>)) {
        out(StreamEvent::Gap { offset: self.next, len });
        self.next += len;
        if let Some(r) = &mut self.recent {
            r.forget_below(self.next);
        }
        self.stats.missed_bytes += len;
        self.stats.gaps += 1;
    }
}

#[cfg(test)]
mod tests;
