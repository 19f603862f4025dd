//! The passive TCP endpoint model, Zeek-compatible.
//!
//! # Read first
//!
//! - A passive observer cannot know either endpoint's real RFC 9293 state; it sees
//!   segments, possibly lost, duplicated or reordered, and must never reject one. So each
//!   endpoint gets the coarse state Zeek's TCP analyzer keeps ([`EndpointState`]), and
//!   Zeek's `conn_state` is computed from the pair ([`conn_state`]). Matching Zeek here is
//!   the point: users compare our records with Zeek's line by line.
//! - Sequence numbers are kept relative to each endpoint's start (its ISN, or the first
//!   sequence number seen minus one when the SYN was missed, as if there had been one) and
//!   unwrapped to 64 bits, so flows over 4 GiB count right.
//! - Payload bytes follow Zeek's `orig_bytes`: the sequence space covered, from the
//!   highest sequence number the endpoint sent or the peer acknowledged, minus the SYN and
//!   FIN octets. Retransmissions do not count twice; data acknowledged but never captured
//!   does count (reassembly reports it as missed bytes).
//! - Odd segments (SYN+FIN, SYN+RST, data before the handshake, a SYN-ACK first) are
//!   recorded in the history and never rejected.

use crate::event::{ConnState, History, HISTORY_CAP};
use crate::packet::{TcpFlags, TcpHeader};

/// Sequence jumps beyond this on SYN or RST segments are not trusted (Zeek's value).
const TOO_LARGE_SEQ_DELTA: i64 = 1 << 20;

/// Zeek's coarse TCP endpoint state.
///
/// Ordered as a connection normally moves through them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointState {
    /// Nothing seen from this endpoint yet.
    #[default]
    Inactive,
    /// Sent a SYN.
    SynSent,
    /// Sent a SYN-ACK without the handshake completing.
    SynAckSent,
    /// Seen mid-stream, with no SYN.
    Partial,
    /// Handshake seen.
    Established,
    /// Sent a FIN.
    Closed,
    /// Sent a RST.
    Reset,
}

/// Bits of the per-connection "already recorded" mask, one set per side (Zeek's
/// `HIST_*`); the responder's are shifted left by 8, so all must stay below `1 << 8`.
pub(crate) mod hist {
    pub(super) const SYN: u16 = 1 << 0;
    pub(super) const FIN: u16 = 1 << 1;
    pub(super) const RST: u16 = 1 << 2;
    pub(super) const FIN_RST: u16 = 1 << 3;
    pub(crate) const DATA: u16 = 1 << 4;
    pub(super) const ACK: u16 = 1 << 5;
    pub(super) const MULTI_FLAG: u16 = 1 << 6;
}

/// History recording for one flow: the letters and which ones were already recorded.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HistoryRec {
    pub(crate) letters: History,
    /// Two bytes, not four: with them the serial number fits in the flow's 256-byte slot.
    pub(crate) seen: u16,
    /// Letters dropped because `letters` was full.
    pub(crate) overflow: u8,
}

impl HistoryRec {
    /// Record `code` (upper case) for a side unless that side already has `mask`.
    /// Returns true when the side had it already (Zeek's `CheckHistory`).
    #[inline]
    pub(crate) fn check(&mut self, initiator: bool, mask: u16, code: u8) -> bool {
        let mask = side_bits(mask, initiator);
        if self.seen & mask == 0 {
            self.seen |= mask;
            self.add(initiator, code);
            false
        } else {
            true
        }
    }

    /// Append `code` (upper case for the initiator, lower case for the responder).
    #[inline]
    pub(crate) fn add(&mut self, initiator: bool, code: u8) {
        let c = if initiator { code } else { code.to_ascii_lowercase() };
        if !self.letters.push(c) {
            self.overflow = self.overflow.saturating_add(1);
        }
    }

    /// Append a letter that is not tied to a side (`^`).
    pub(crate) fn add_raw(&mut self, c: u8) {
        if !self.letters.push(c) {
            self.overflow = self.overflow.saturating_add(1);
        }
    }

    /// Record a logarithmically scaled letter: at the 1st, 10th, 100th, ... occurrence.
    #[inline]
    pub(crate) fn scaled(&mut self, initiator: bool, count: u32, code: u8) {
        if is_power_of_ten(count) {
            self.add(initiator, code);
        }
    }
}

/// `mask` (one of the `hist` bits) for the initiator's side, or shifted to the
/// responder's. A shift rather than a branch: on mixed traffic the side is unpredictable,
/// and the two places that choose it as a branch missed 0.44 times a packet
/// (`make_large`, callgrind's branch simulation; 7 instructions a packet fewer too).
#[inline(always)]
fn side_bits(mask: u16, initiator: bool) -> u16 {
    mask << (8 * u16::from(!initiator))
}

const _: () = assert!(HISTORY_CAP >= 16);

#[inline]
fn is_power_of_ten(mut n: u32) -> bool {
    if n == 0 {
        return false;
    }
    while n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

/// What the tracker keeps per endpoint. Sized with care (it is most of a flow's memory):
/// the acknowledgment is kept as its low 32 bits and unwrapped against `last_rel` when
/// used, and for non-TCP flows `last_rel` is the payload byte count.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpEndpoint {
    /// One past the highest sequence number sent, relative to `start`, unwrapped. For
    /// other protocols: the payload bytes sent.
    pub(crate) last_rel: u64,
    pub(crate) state: EndpointState,
    /// ISN (or first sequence number - 1 when picked up mid-stream).
    start: u32,
    /// Highest acknowledgment the peer sent for this endpoint's data, relative to
    /// `start`, low 32 bits (`ack_rel()` unwraps it).
    ack_low: u32,
    hist_last_syn: u32,
    hist_last_fin: u32,
    hist_last_rst: u32,
    /// Segments with payload wholly at or below `last_rel`.
    pub(crate) retransmits: u32,
    /// Zero-window advertisements (for the scaled `W`), saturating.
    zero_windows: u16,
    /// Union of the TCP flags this endpoint sent.
    pub(crate) flags: u16,
    /// Packets from this endpoint whose checksum failed (for the scaled `C`), saturating.
    /// The three flags below share one byte to make room for it in the 40 bytes.
    pub(crate) bad_checksums: u16,
    /// `marks::*` bits.
    marks: u8,
}

/// Bits of `TcpEndpoint::marks`.
mod marks {
    /// Sent a FIN.
    pub(super) const FIN_SEEN: u8 = 1 << 0;
    /// Sent a RST (in any state; see `update_state` for why the state itself may stay
    /// `Closed`).
    pub(super) const RST_SEEN: u8 = 1 << 1;
    /// Went from `Closed` to `Reset` (a FIN followed by a RST).
    pub(super) const RESET_AFTER_FIN: u8 = 1 << 2;
}

impl TcpEndpoint {
    /// This endpoint sent a FIN.
    #[inline]
    fn fin_seen(&self) -> bool {
        self.marks & marks::FIN_SEEN != 0
    }

    /// This endpoint sent a RST.
    #[inline]
    pub(crate) fn rst_seen(&self) -> bool {
        self.marks & marks::RST_SEEN != 0
    }

    /// Zeek's payload size for this endpoint.
    pub(crate) fn payload_bytes(&self) -> u64 {
        if self.state == EndpointState::Inactive {
            return 0;
        }
        // Less the SYN octet (real or assumed) and the FIN octet.
        let size = self.last_rel.max(self.ack_rel()).saturating_sub(1);
        if self.fin_seen() {
            size.saturating_sub(1)
        } else {
            size
        }
    }

    /// The peer's highest acknowledgment, relative and unwrapped. An acknowledgment is
    /// never 2 GiB away from the data it acknowledges, so the low bits suffice.
    #[inline]
    fn ack_rel(&self) -> u64 {
        unwrap_near(self.ack_low, self.last_rel)
    }

    /// True when `seq` is this endpoint's initial sequence number (a retransmitted SYN).
    pub(crate) fn same_start(&self, seq: u32) -> bool {
        seq == self.start
    }

    /// `seq` relative to this endpoint's start, unwrapped near `reference`.
    #[inline]
    fn rel(&self, seq: u32, reference: u64) -> u64 {
        unwrap_near(seq.wrapping_sub(self.start), reference)
    }
}

/// The 64-bit value whose low 32 bits are `low` and that is closest to `reference`
/// (never below zero). Shared with the reassembler, which unwraps stream offsets the
/// same way.
#[inline]
pub(crate) fn unwrap_near(low: u32, reference: u64) -> u64 {
    let base = reference & !0xffff_ffff;
    let cand = base | u64::from(low);
    if cand > reference && cand - reference > 1 << 31 && cand >= 1 << 32 {
        cand - (1 << 32)
    } else if cand < reference && reference - cand > 1 << 31 {
        cand + (1 << 32)
    } else {
        cand
    }
}

/// Inputs for property tests of shortcuts that stand in for [`unwrap_near`] (here and in
/// the reassembler): values at the edges where unwrapping goes wrong.
#[cfg(test)]
pub(crate) mod unwrap_cases {
    use proptest::prelude::*;

    /// A 64-bit position near one of the places unwrapping can go wrong (zero, 2^31,
    /// 2^32, 2^33) or anywhere.
    pub(crate) fn position() -> impl Strategy<Value = u64> {
        let near = prop::sample::select(vec![0u64, 1 << 31, 1 << 32, 1 << 33]);
        prop_oneof![
            (near, -70_000i64..70_000).prop_map(|(at, off)| at.saturating_add_signed(off)),
            0u64..1 << 40,
        ]
    }

    /// Where a 32-bit value lies, for [`pick`]: near a base or half the number space
    /// from it (within 70,000 either way, across wraps, 2 GiB exactly among them), or
    /// anywhere.
    pub(crate) fn near32() -> impl Strategy<Value = (u8, i32, u32)> {
        (0u8..3, prop_oneof![-70_000i32..70_000, -2i32..3], any::<u32>())
    }

    /// The value `near32`'s choice gives against `base`.
    pub(crate) fn pick(base: u32, (near, off, anywhere): (u8, i32, u32)) -> u32 {
        match near {
            0 => base.wrapping_add_signed(off),
            1 => base.wrapping_add(1 << 31).wrapping_add_signed(off),
            _ => anywhere,
        }
    }
}

/// One TCP segment, as the state machine needs it: its header, where the decoder left
/// it, and its payload length on the wire. (The header by reference: copied into the
/// segment, its fields went to the stack on every packet, to be passed to the whole
/// model should the steady path decline; callgrind, `drive_loop 200`: 678 -> 664
/// instructions a packet.)
#[derive(Copy, Clone, Debug)]
pub(crate) struct Segment<'a> {
    pub(crate) tcp: &'a TcpHeader,
    pub(crate) len: u32,
}

/// Feed one segment from `ep` (the initiator when `initiator`) with `peer` its peer.
/// Updates both endpoints and the history, following Zeek's order: endpoint
/// initialisation, history, window, sequence tracking, acknowledgment, state machine.
///
/// Most segments are a connection's steady state: an ACK, with or without data, from
/// an endpoint past its handshake, in an open window, whose history letter is recorded
/// already. For those only the sequence and acknowledgment tracking can change
/// anything, and that is all they get, inline; the rest goes to the whole model out
/// of line. Callgrind, `track_loop 1 200000`: 866 -> 805 instructions a packet. A
/// property test holds both paths to the same result on every steady segment.
///
/// Returns whether the segment was a steady one, which changes no endpoint's state.
#[inline(always)]
pub(crate) fn on_segment(
    ep: &mut TcpEndpoint,
    peer: &mut TcpEndpoint,
    initiator: bool,
    seg: Segment<'_>,
    hist: &mut HistoryRec,
) -> bool {
    if is_steady(ep, initiator, &seg, hist) {
        ep.flags |= seg.tcp.flags.0;
        let rel_seq = ep.rel(seg.tcp.seq, ep.last_rel);
        track_seq(ep, rel_seq, u64::from(seg.len), seg.len);
        acknowledge(peer, seg.tcp.ack);
        true
    } else {
        on_any_segment(ep, peer, initiator, seg, hist);
        false
    }
}

/// Whether `seg` is a steady-state segment (see `on_segment`): ACK without SYN, FIN or
/// RST, a non-zero window, from an endpoint in `Partial` or `Established` whose side has
/// the history letter the segment would record (`D` for data, `A` for a bare ACK).
#[inline(always)]
fn is_steady(ep: &TcpEndpoint, initiator: bool, seg: &Segment<'_>, hist: &HistoryRec) -> bool {
    let control = TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST | TcpFlags::ACK;
    let letter = if seg.len > 0 { hist::DATA } else { hist::ACK };
    let letter = side_bits(letter, initiator);
    seg.tcp.flags.0 & control == TcpFlags::ACK
        && seg.tcp.window != 0
        && matches!(ep.state, EndpointState::Partial | EndpointState::Established)
        && hist.seen & letter != 0
}

/// Sequence tracking (Zeek's `update_last_seq`) for a segment trusted as it stands:
/// `rel_seq` its relative sequence number, `seg_len` the sequence space it covers,
/// `len` its payload.
#[inline(always)]
fn track_seq(ep: &mut TcpEndpoint, rel_seq: u64, seg_len: u64, len: u32) {
    let new_last = rel_seq + seg_len;
    if new_last as i64 - ep.last_rel as i64 > 0 {
        ep.last_rel = new_last;
    } else if len > 0 {
        ep.retransmits = ep.retransmits.saturating_add(1);
    }
}

/// Acknowledgment of `peer`'s data up to `ack` (an ACK segment's field).
#[inline(always)]
fn acknowledge(peer: &mut TcpEndpoint, ack: u32) {
    if peer.state == EndpointState::Inactive {
        return;
    }
    // Most acknowledgments fall between the highest one so far and the peer's highest
    // sequence number, less than 2 GiB apart: the step from the old acknowledgment to
    // the new one is then the difference of their low 32 bits, and no unwrapping is
    // needed (`acknowledge_unwrapped` comes to the same, a property test holds them
    // equal). Callgrind, `drive_loop 200`: 697 -> 678 instructions a packet.
    let rel = ack.wrapping_sub(peer.start);
    let unacked = (peer.last_rel as u32).wrapping_sub(peer.ack_low);
    let step = rel.wrapping_sub(peer.ack_low);
    if unacked < 1 << 31 && step <= unacked {
        // (A step of 0 rewrites the same value.)
        if ack != 0 || i64::from(step) <= TOO_LARGE_SEQ_DELTA {
            peer.ack_low = rel;
        }
        return;
    }
    acknowledge_unwrapped(peer, ack);
}

/// `acknowledge` for any acknowledgment of an active `peer`, through 64-bit offsets.
#[inline(never)]
fn acknowledge_unwrapped(peer: &mut TcpEndpoint, ack: u32) {
    let old = peer.ack_rel();
    let ack_rel = peer.rel(ack, old.max(peer.last_rel));
    let delta = ack_rel as i64 - old as i64;
    // An ack of 0 that jumps far is more likely broken than a wrap landing on 0.
    // Chosen without a branch (`&`, `|` and a select): whether an acknowledgment moves
    // forward is data-dependent, and as a branch it missed 0.18 times a packet on
    // `make_large` (callgrind's branch simulation: 3.03 -> 2.86 a packet, for one
    // instruction more).
    let moves = (ack != 0) | (delta <= TOO_LARGE_SEQ_DELTA);
    let moves = moves & (delta > 0);
    peer.ack_low = if moves { ack_rel as u32 } else { peer.ack_low };
}

/// `on_segment` for any segment: the whole model.
#[inline(never)]
fn on_any_segment(
    ep: &mut TcpEndpoint,
    peer: &mut TcpEndpoint,
    initiator: bool,
    seg: Segment<'_>,
    hist: &mut HistoryRec,
) {
    let f = seg.tcp.flags;
    ep.flags |= f.0;
    let seg_len = u64::from(seg.len) + u64::from(f.syn()) + u64::from(f.fin());

    // 1. Endpoint initialisation.
    match ep.state {
        EndpointState::Inactive => {
            if f.syn() {
                ep.start = seg.tcp.seq;
                ep.last_rel = seg_len;
            } else {
                // Picked up mid-stream: number as though a SYN had been seen.
                ep.start = seg.tcp.seq.wrapping_sub(1);
                ep.last_rel = 1;
            }
            ep.ack_low = 0;
        }
        EndpointState::SynSent | EndpointState::SynAckSent
            if f.syn() && seg.tcp.seq != ep.start =>
        {
            // A SYN with a new ISN before the handshake completed (SYN_seq_jump).
            ep.start = seg.tcp.seq;
            ep.ack_low = 0;
            ep.last_rel = seg_len;
        }
        _ => {}
    }
    let rel_seq = ep.rel(seg.tcp.seq, ep.last_rel);

    // 2. History (Zeek's update_history).
    let bits = u8::from(f.syn()) + u8::from(f.fin()) + u8::from(f.rst());
    if bits > 1 {
        if f.fin() && f.rst() {
            hist.check(initiator, hist::FIN_RST, b'I');
        } else {
            hist.check(initiator, hist::MULTI_FLAG, b'Q');
        }
    } else if bits == 1 {
        if f.syn() {
            let code = if f.ack() { b'H' } else { b'S' };
            if hist.check(initiator, hist::SYN, code) && rel_seq as u32 != ep.hist_last_syn {
                hist.add(initiator, code);
            }
            ep.hist_last_syn = rel_seq as u32;
        }
        if f.fin() {
            let fin_at = (rel_seq + u64::from(seg.len)) as u32;
            if hist.check(initiator, hist::FIN, b'F') && fin_at != ep.hist_last_fin {
                hist.add(initiator, b'F');
            }
            ep.hist_last_fin = fin_at;
        }
        if f.rst() {
            if hist.check(initiator, hist::RST, b'R') && rel_seq as u32 != ep.hist_last_rst {
                hist.add(initiator, b'R');
            }
            ep.hist_last_rst = rel_seq as u32;
        }
    } else if seg.len > 0 {
        hist.check(initiator, hist::DATA, b'D');
    } else if f.ack() {
        hist.check(initiator, hist::ACK, b'A');
    }

    // 3. Zero windows, except on or after a RST, or once the peer has closed (no window
    //    matters then).
    if seg.tcp.window == 0
        && !f.rst()
        && peer.state != EndpointState::Closed
        && ep.state != EndpointState::Reset
    {
        ep.zero_windows = ep.zero_windows.saturating_add(1);
        hist.scaled(initiator, u32::from(ep.zero_windows), b'W');
    }

    // 4. Sequence tracking (Zeek's update_last_seq).
    let new_last = rel_seq + seg_len;
    let delta = new_last as i64 - ep.last_rel as i64;
    if (f.syn() || f.rst()) && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta) {
        // An outlandish SYN or RST sequence number is not trusted.
    } else if f.fin() && ep.last_rel == 1 {
        // Only the SYN seen so far: trust the FIN even backwards (huge transfers).
        ep.last_rel = new_last;
    } else if ep.state == EndpointState::Reset {
        // Nothing after a RST is trusted.
    } else {
        track_seq(ep, rel_seq, seg_len, seg.len);
    }
    if f.fin() {
        ep.marks |= marks::FIN_SEEN;
    }
    if f.rst() {
        ep.marks |= marks::RST_SEEN;
    }

    // 5. Acknowledgment of the peer's data.
    if f.ack() {
        acknowledge(peer, seg.tcp.ack);
    }

    // 6. State machine.
    update_state(ep, peer, initiator, f, seg.len);
}

/// Zeek's endpoint state transitions for one segment from `ep`.
fn update_state(
    ep: &mut TcpEndpoint,
    peer: &mut TcpEndpoint,
    initiator: bool,
    f: TcpFlags,
    len: u32,
) {
    use EndpointState::*;
    match ep.state {
        Inactive => {
            if f.syn() {
                if initiator {
                    ep.state = if f.ack() { SynAckSent } else { SynSent };
                } else {
                    // The responder's SYN (normally a SYN-ACK): the handshake is seen
                    // from its side. A SYN without ACK here is a simultaneous open.
                    if peer.state == SynSent {
                        peer.state = Established;
                    }
                    ep.state = Established;
                }
            }
            if f.fin() {
                ep.state = Closed;
            }
            if f.rst() {
                ep.state = Reset;
            }
            if ep.state == Inactive {
                // No control flags: data or a bare ACK. Some stacks ACK a SYN before
                // answering it; that alone does not make a partial connection.
                let early_ack = !initiator && len == 0 && peer.state == SynSent;
                if !early_ack {
                    ep.state = Partial;
                }
            }
        }
        SynSent | SynAckSent => {
            if f.fin() {
                ep.state = Closed;
            }
            if f.rst() {
                ep.state = Reset;
            }
        }
        Partial | Established => {
            if f.fin() && !f.rst() {
                ep.state = Closed;
                // The peer sent FIN then RST, and now this side closes too: stacks often
                // follow a FIN with a RST, so Zeek turns the peer back into closed and
                // the connection counts as properly terminated (SF).
                if peer.state == Reset && peer.marks & marks::RESET_AFTER_FIN != 0 {
                    peer.state = Closed;
                }
            }
            if f.rst() {
                ep.state = Reset;
            }
        }
        Closed => {
            // A RST after this side's FIN: the connection is reset unless the peer has
            // closed too (FIN, FIN, RST is still a normal termination for Zeek).
            if f.rst() && peer.state != Closed {
                ep.state = Reset;
                ep.marks |= marks::RESET_AFTER_FIN;
            }
        }
        Reset => {}
    }
}

/// Zeek's `conn_state` for TCP, from the originator (`o`) and responder (`r`) endpoints
/// and the history so far.
pub(crate) fn conn_state(o: &TcpEndpoint, r: &TcpEndpoint, history: &History) -> ConnState {
    use EndpointState::*;
    let (os, rs) = (o.state, r.state);
    let o_inactive = matches!(os, Inactive | Partial);
    let r_inactive = matches!(rs, Inactive | Partial);
    if rs == Reset {
        if matches!(os, SynSent | SynAckSent)
            || (os == Reset && o.payload_bytes() == 0 && r.payload_bytes() == 0)
        {
            ConnState::Rej
        } else if o_inactive {
            ConnState::Rstrh
        } else {
            ConnState::Rstr
        }
    } else if os == Reset {
        if r_inactive {
            if syn_then_reset(history.as_str()) {
                ConnState::Rstos0
            } else {
                ConnState::Oth
            }
        } else {
            ConnState::Rsto
        }
    } else if rs == Closed && os == Closed {
        ConnState::Sf
    } else if os == Closed {
        if r_inactive {
            ConnState::Sh
        } else {
            ConnState::S2
        }
    } else if rs == Closed {
        if o_inactive {
            ConnState::Shr
        } else {
            ConnState::S3
        }
    } else if os == SynSent && rs == Inactive {
        ConnState::S0
    } else if os == Established && rs == Established {
        ConnState::S1
    } else {
        ConnState::Oth
    }
}

/// Zeek's `/\^?S[^HAFGIQ]*R.*/` over the history: an originator SYN, then a RST before
/// any handshake, ACK, FIN, gap, inconsistency or multi-flag packet from the originator.
fn syn_then_reset(h: &str) -> bool {
    let h = h.strip_prefix('^').unwrap_or(h);
    let Some(rest) = h.strip_prefix('S') else { return false };
    for c in rest.chars() {
        match c {
            'R' => return true,
            'H' | 'A' | 'F' | 'G' | 'I' | 'Q' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::unwrap_cases::{near32, pick, position};
    use super::*;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = EndpointState> {
        use EndpointState::*;
        prop::sample::select(vec![
            Inactive,
            SynSent,
            SynAckSent,
            Partial,
            Established,
            Closed,
            Reset,
        ])
    }

    /// An endpoint in any state, its numbers near each other or anywhere.
    fn endpoint(state: impl Strategy<Value = EndpointState>) -> impl Strategy<Value = TcpEndpoint> {
        (state, any::<u32>(), 0u64..1 << 40, any::<u32>(), any::<u32>(), any::<u16>(), any::<u8>())
            .prop_map(|(state, start, last_rel, ack_low, retransmits, flags, marks)| TcpEndpoint {
                last_rel,
                state,
                start,
                ack_low,
                hist_last_syn: 0,
                hist_last_fin: 0,
                hist_last_rst: 0,
                retransmits,
                zero_windows: 0,
                flags,
                bad_checksums: 0,
                marks: marks & 7,
            })
    }

    /// A segment of `flags` from `ep`: its sequence and acknowledgment numbers near the
    /// two endpoints' positions (ahead, behind, across a wrap) or anywhere.
    fn segment(
        flags: impl Strategy<Value = u16>,
    ) -> impl Strategy<Value = (u32, i64, u32, u32, u16)> {
        (any::<u32>(), -70_000i64..70_000, flags.prop_map(u32::from), 0u32..3000, any::<u16>())
    }

    /// A segment's header and payload length.
    fn build(
        ep: &TcpEndpoint,
        peer: &TcpEndpoint,
        raw: (u32, i64, u32, u32, u16),
        near: bool,
    ) -> (TcpHeader, u32) {
        let (anywhere, off, flags, len, window) = raw;
        let at = |e: &TcpEndpoint| e.start.wrapping_add(e.last_rel as u32).wrapping_add(off as u32);
        let tcp = TcpHeader {
            src_port: 1,
            dst_port: 2,
            seq: if near { at(ep) } else { anywhere },
            ack: if near { at(peer) } else { anywhere.rotate_left(7) },
            flags: TcpFlags(flags as u16),
            window,
            header_len: 20,
            offset: 34,
        };
        // Segments with PSH carry data; without it, half of them are bare.
        (tcp, if flags & u32::from(TcpFlags::PSH) != 0 { len } else { len % 2 * len })
    }

    fn both_ways(
        mut ep: TcpEndpoint,
        mut peer: TcpEndpoint,
        initiator: bool,
        seg: Segment<'_>,
        mut hist: HistoryRec,
    ) -> Result<(), TestCaseError> {
        let (mut ep2, mut peer2, mut hist2) = (ep, peer, hist);
        let (states, peer_state) = (ep.state, peer.state);
        let steady = on_segment(&mut ep, &mut peer, initiator, seg, &mut hist);
        on_any_segment(&mut ep2, &mut peer2, initiator, seg, &mut hist2);
        if steady {
            prop_assert_eq!((ep.state, peer.state), (states, peer_state));
        }
        prop_assert_eq!((ep, peer, hist), (ep2, peer2, hist2), "{:?}", seg);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(0x57ead), ..ProptestConfig::default() })]

        /// The steady path changes exactly what the whole model does, on segments it takes.
        #[test]
        fn steady_segments_take_the_whole_models_steps(
            ep in endpoint(prop::sample::select(vec![EndpointState::Partial, EndpointState::Established])),
            peer in endpoint(state()),
            raw in segment(prop::sample::select(vec![0x010u16, 0x018, 0x030, 0x0d0, 0x110])),
            near in any::<bool>(),
            initiator in any::<bool>(),
            seen in any::<u16>(),
        ) {
            let (tcp, len) = build(&ep, &peer, raw, near);
            let seg = Segment { tcp: &tcp, len };
            let letter = if seg.len > 0 { hist::DATA } else { hist::ACK };
            let hist = HistoryRec { seen: seen | letter | letter << 8, ..HistoryRec::default() };
            prop_assume!(seg.tcp.window != 0);
            prop_assert!(is_steady(&ep, initiator, &seg, &hist));
            both_ways(ep, peer, initiator, seg, hist)?;
        }

        /// And any segment, steady or not, comes out as the whole model leaves it.
        #[test]
        fn any_segment_comes_out_as_the_whole_model_leaves_it(
            ep in endpoint(state()),
            peer in endpoint(state()),
            raw in segment(0u16..0x200),
            near in any::<bool>(),
            initiator in any::<bool>(),
            seen in any::<u16>(),
            zero_window in any::<bool>(),
        ) {
            let (mut tcp, len) = build(&ep, &peer, raw, near);
            if zero_window {
                tcp.window = 0;
            }
            let seg = Segment { tcp: &tcp, len };
            both_ways(ep, peer, initiator, seg, HistoryRec { seen, ..HistoryRec::default() })?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, rng_seed: proptest::test_runner::RngSeed::Fixed(0xac4), ..ProptestConfig::default() })]

        /// The shortcut in `acknowledge` leaves the endpoint as the unwrapping does.
        #[test]
        fn acknowledge_shortcut_agrees_with_unwrapping(
            last_rel in position(),
            start in any::<u32>(),
            ack_low in near32(),
            ack in near32(),
            zero in 0u8..8,
        ) {
            let mut ep = TcpEndpoint { state: EndpointState::Established, start, last_rel, ..TcpEndpoint::default() };
            ep.ack_low = pick(last_rel as u32, ack_low);
            let ack = if zero == 0 { 0 } else { pick(start.wrapping_add(ep.ack_low), ack) };
            let mut full = ep;
            acknowledge(&mut ep, ack);
            acknowledge_unwrapped(&mut full, ack);
            prop_assert_eq!(ep, full);
        }
    }

    #[test]
    fn unwrap_near_handles_wraps() {
        assert_eq!(unwrap_near(5, 0), 5);
        assert_eq!(unwrap_near(0xffff_fff0, 0x1_0000_0010), 0xffff_fff0);
        assert_eq!(unwrap_near(0x10, 0xffff_fff0), 0x1_0000_0010);
        assert_eq!(unwrap_near(0xffff_fff0, 5), 0xffff_fff0); // no wrap below zero
    }

    #[test]
    fn powers_of_ten() {
        let hits: Vec<u32> = (0..=1000).filter(|&n| is_power_of_ten(n)).collect();
        assert_eq!(hits, [1, 10, 100, 1000]);
    }

    #[test]
    fn rstos0_pattern() {
        assert!(syn_then_reset("SR"));
        assert!(syn_then_reset("^SdR"));
        // Zeek's class excludes only the originator's letters: a responder's `h` passes.
        assert!(syn_then_reset("ShR"));
        assert!(!syn_then_reset("SHR"));
        assert!(!syn_then_reset("SAR"));
        assert!(!syn_then_reset("R"));
    }
}
