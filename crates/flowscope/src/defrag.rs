//! IPv4 (RFC 791) and IPv6 (RFC 8200) defragmentation, bounded in every dimension.
//!
//! [`Defragmenter::push`] takes a decoded fragment and either keeps it (the datagram is
//! not complete yet) or, for the fragment that completes a datagram, hands back a
//! [`Datagram`]: the whole packet rebuilt as a frame of the *same link type* — the first
//! fragment's link-layer and IP headers (lengths patched, fragment fields cleared, an
//! IPv6 fragment header removed) followed by the reassembled payload — so it decodes,
//! keys and reassembles like any unfragmented frame, VLAN tags and all.
//!
//! # Policy
//!
//! - Fragments are grouped by (source, destination, identification, and for IPv4 the
//!   protocol), as both RFCs define.
//! - IPv6: overlapping fragments drop the whole datagram (RFC 5722). IPv4: the bytes
//!   held first win and the fragment fills only what is missing (Zeek's rule, and the
//!   one our TCP reassembly uses); overlaps, and overlaps whose bytes differ (the
//!   signature of a fragment-based IDS evasion), are counted. An exact duplicate of a
//!   fragment already held is ignored.
//! - A first fragment too short to hold its transport header (the "tiny fragment"
//!   pattern of RFC 1858) is reassembled but counted.
//! - Bounds: [`DefragConfig::max_datagrams`] in flight (the oldest is dropped to make
//!   room), [`DefragConfig::max_fragments`] per datagram, 65,535 payload bytes per
//!   datagram (the most either IP version can fragment), [`DefragConfig::max_bytes`]
//!   buffered in total (the oldest datagrams are dropped to make room), and
//!   [`DefragConfig::timeout`] in packet time from a datagram's first fragment. Every
//!   drop is counted in [`DefragStats`].
//! - Fragments snapped by the capture cannot be reassembled and are dropped (counted).
//!
//! # Memory
//!
//! Buffers are reused: a completed datagram's buffer comes back through
//! [`Defragmenter::recycle`], and a finished datagram's payload buffer stays with its
//! slot, so steady traffic allocates nothing per fragment. Buffers that grew past 16 KiB
//! are released rather than kept, so a burst of large datagrams does not pin memory.

use core::time::Duration;
use std::collections::VecDeque;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::packet::{Headers, IpHeader, LinkType, PacketView};
use crate::time::Timestamp;

/// Bounds for [`Defragmenter`].
///
/// `#[non_exhaustive]`: start from [`DefragConfig::default`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DefragConfig {
    /// Reassemble at all (default true). When false, fragments are keyed as the
    /// extractor keys them (first fragments by their headers, others unmatched).
    pub enabled: bool,
    /// Datagrams in flight at once (default 4,096); at the cap the oldest is dropped.
    pub max_datagrams: usize,
    /// Fragments per datagram (default 256: 64 KiB in 256-byte pieces); more drop the
    /// datagram.
    pub max_fragments: usize,
    /// Payload bytes one datagram may reach (default and most 65,535, what either IP
    /// version can fragment); a fragment reaching past it drops the datagram.
    pub max_datagram_bytes: u32,
    /// Bytes buffered across all datagrams in flight (default 16 MiB); at the cap the
    /// oldest datagrams are dropped.
    pub max_bytes: usize,
    /// How long a datagram may wait for its missing fragments, in packet time, from its
    /// first fragment (default 30 s, Linux's `ipfrag_time`).
    pub timeout: Duration,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            enabled: true,
            max_datagrams: 4096,
            max_fragments: 256,
            max_datagram_bytes: MAX_PAYLOAD,
            max_bytes: 16 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

impl DefragConfig {
    /// No reassembly.
    pub fn disabled() -> Self {
        DefragConfig { enabled: false, ..DefragConfig::default() }
    }

    /// Set the datagrams in flight.
    pub fn with_max_datagrams(mut self, n: usize) -> Self {
        self.max_datagrams = n.max(1);
        self
    }

    /// Set the payload bytes one datagram may reach (at most 65,535).
    pub fn with_max_datagram_bytes(mut self, n: u32) -> Self {
        self.max_datagram_bytes = n.min(MAX_PAYLOAD);
        self
    }

    /// Set the global byte cap.
    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Set the reassembly timeout.
    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
}

/// What the defragmenter did, fragment by fragment.
///
/// Invariant: every fragment pushed is counted once in `fragments`; every datagram
/// started ends once, as `reassembled` or in exactly one `dropped_*` counter (or is
/// still in flight).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments pushed.
    pub fragments: u64,
    /// Fragments that did not complete a datagram (held, or discarded with it): with
    /// `reassembled`, `fragments == absorbed + reassembled`.
    pub absorbed: u64,
    /// Datagrams rebuilt whole.
    pub reassembled: u64,
    /// Exact duplicates of a fragment already held (ignored).
    pub duplicates: u64,
    /// First fragments too short for their transport header (still reassembled).
    pub tiny: u64,
    /// IPv4 fragments that overlapped bytes already held (the bytes held first win).
    pub overlapping: u64,
    /// Of those, fragments whose overlapping bytes differed from the bytes held: the
    /// signature of an IDS evasion (an attacker sends two versions of the same bytes,
    /// hoping the monitor and the host keep different ones).
    pub inconsistent: u64,
    /// IPv6 datagrams dropped because two fragments overlapped (RFC 5722).
    pub dropped_overlap: u64,
    /// Datagrams dropped because their fragments did not all arrive within the timeout.
    pub dropped_timeout: u64,
    /// Datagrams dropped because they would exceed `max_datagram_bytes`, had more than
    /// `max_fragments` fragments, an empty fragment, a non-final fragment whose length is
    /// not a multiple of 8, or fragments that disagreed on the datagram's end.
    pub dropped_invalid: u64,
    /// Datagrams dropped to make room under `max_datagrams` or `max_bytes`.
    pub dropped_cap: u64,
    /// Fragments dropped because the capture snapped them (never reassembled).
    pub dropped_truncated: u64,
}

/// A rebuilt datagram, as a frame: see the [module docs](self). Hand the buffer back
/// with [`Defragmenter::recycle`] when done with it.
#[derive(Debug)]
pub struct Datagram {
    /// The frame: the first fragment's headers and the whole payload.
    pub frame: Vec<u8>,
    /// The link type of the fragments.
    pub link: LinkType,
    /// The fragments' wire lengths added up (what the datagram cost on the wire).
    pub orig_len: u32,
}

impl Datagram {
    /// A view of the rebuilt frame, timestamped `ts` (the completing fragment's time).
    pub fn view(&self, ts: Timestamp) -> PacketView<'_> {
        PacketView::new(ts, self.link, &self.frame).with_orig_len(self.orig_len)
    }
}

/// What [`Defragmenter::push`] did with a fragment.
#[derive(Debug)]
pub enum Push {
    /// Kept (or discarded: see [`DefragStats`]); nothing to process yet.
    Absorbed,
    /// This fragment completed a datagram.
    Complete(Datagram),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    src: [u64; 2],
    dst: [u64; 2],
    id: u32,
    /// IPv4: the protocol (part of the key); IPv6: 0 (the protocol is behind the
    /// fragment header and may differ between fragments only in malice).
    proto: u8,
    v6: bool,
}

/// One datagram in flight.
#[derive(Debug, Default)]
struct Pending {
    key: Option<FragKey>,
    /// Bumped on reuse, so stale entries of `order` are recognised.
    generation: u32,
    started: Timestamp,
    link: Option<LinkType>,
    /// The first fragment's headers (link layer up to the end of the unfragmentable
    /// part), with where to patch them; empty until the first fragment arrives.
    head: Vec<u8>,
    patch: Patch,
    /// Payload bytes, at their offsets.
    data: Vec<u8>,
    /// Received payload ranges, sorted, non-overlapping.
    ranges: Vec<(u32, u32)>,
    /// The datagram's payload length, once the last fragment arrived.
    total: Option<u32>,
    wire_bytes: u64,
    /// First fragment too short for its transport header.
    tiny: bool,
}

#[derive(Copy, Clone, Debug, Default)]
enum Patch {
    #[default]
    None,
    /// IPv4 header at this offset, with this header length.
    V4 { ip: usize, hlen: usize },
    /// IPv6 header at `ip`; the next-header byte that named the fragment header is at
    /// `next_at` and must name `next` instead.
    V6 { ip: usize, next_at: usize, next: u8 },
}

/// Buffers larger than this are released instead of kept for reuse.
const KEEP_CAPACITY: usize = 16 << 10;
/// The most payload bytes a fragmented datagram can carry (a 13-bit offset in 8-byte
/// units plus the last fragment, capped by the 16-bit length fields).
const MAX_PAYLOAD: u32 = 65_535;

/// Reassembles IP fragments; see the [module docs](self).
#[derive(Debug)]
pub struct Defragmenter {
    config: DefragConfig,
    slots: Vec<Pending>,
    free: Vec<u32>,
    index: HashMap<FragKey, u32, FixedState>,
    /// Slots in the order their datagrams started (for timeout and eviction), with the
    /// generation they had then.
    order: VecDeque<(u32, u32)>,
    /// Spare buffers for rebuilt datagrams.
    spare: Vec<Vec<u8>>,
    bytes: usize,
    stats: DefragStats,
}

impl Defragmenter {
    /// A defragmenter with these bounds. Nothing is allocated until the first fragment.
    pub fn new(config: DefragConfig) -> Self {
        Defragmenter {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::with_hasher(FixedState::default()),
            order: VecDeque::new(),
            spare: Vec::new(),
            bytes: 0,
            stats: DefragStats::default(),
        }
    }

    /// The bounds in force.
    pub fn config(&self) -> &DefragConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }

    /// Datagrams waiting for fragments.
    pub fn in_flight(&self) -> usize {
        self.index.len()
    }

    /// Bytes held for datagrams in flight (headers and payload).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes allocated: buffers (in flight and spare), bookkeeping.
    pub fn memory_bytes(&self) -> usize {
        let held: usize = self
            .slots
            .iter()
            .map(|p| p.head.capacity() + p.data.capacity() + p.ranges.capacity() * 8)
            .sum();
        held + self.spare.iter().map(Vec::capacity).sum::<usize>()
            + self.slots.capacity() * core::mem::size_of::<Pending>()
            + self.index.allocation_size()
            + self.order.capacity() * 8
            + self.free.capacity() * 4
    }

    /// Give a [`Datagram`]'s buffer back for reuse.
    pub fn recycle(&mut self, datagram: Datagram) {
        let mut buf = datagram.frame;
        if buf.capacity() <= KEEP_CAPACITY && self.spare.len() < 4 {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Drop the datagrams whose timeout passed by `now`.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some(&(slot, generation)) = self.order.front() {
            let Some(p) = self.slots.get(slot as usize) else {
                self.order.pop_front();
                continue;
            };
            if p.generation != generation || p.key.is_none() {
                self.order.pop_front();
                continue;
            }
            if p.started.saturating_add(self.config.timeout) >= now {
                break;
            }
            self.order.pop_front();
            self.stats.dropped_timeout += 1;
            self.release(slot);
        }
    }

    /// Take one fragment: `headers` must be `packet`'s decoded headers, with
    /// `headers.ip.fragment` set (anything else is ignored, as absorbed).
    pub fn push(&mut self, packet: &PacketView<'_>, headers: &Headers) -> Push {
        self.push_from(packet, headers, false)
    }

    /// [`push`](Self::push) for a fragment found inside a tunnel: the rebuilt datagram
    /// is a raw-IP frame ([`LinkType::RAW`]) holding only the inner datagram, since the
    /// outer headers' lengths would not fit it.
    pub fn push_inner(&mut self, packet: &PacketView<'_>, headers: &Headers) -> Push {
        self.push_from(packet, headers, true)
    }

    fn push_from(&mut self, packet: &PacketView<'_>, headers: &Headers, inner: bool) -> Push {
        self.stats.fragments += 1;
        self.expire(packet.ts);
        let outcome = self.take(packet, headers, inner);
        if matches!(outcome, Push::Absorbed) {
            self.stats.absorbed += 1;
        }
        outcome
    }

    fn take(&mut self, packet: &PacketView<'_>, headers: &Headers, inner: bool) -> Push {
        let (Some(ip), frame) = (headers.ip, packet.frame) else { return Push::Absorbed };
        let Some(frag) = ip.fragment else { return Push::Absorbed };
        let Some(mut piece) = locate(frame, &ip) else {
            // Headers or payload cut by the capture.
            self.stats.dropped_truncated += 1;
            return Push::Absorbed;
        };
        let link = if inner {
            // Keep only the inner datagram's headers: shift the patch points to it.
            let base = ip.offset as usize;
            piece.head_start = base;
            piece.patch = match piece.patch {
                Patch::V4 { ip, hlen } => Patch::V4 { ip: ip - base, hlen },
                Patch::V6 { ip, next_at, next } => {
                    Patch::V6 { ip: ip - base, next_at: next_at - base, next }
                }
                Patch::None => Patch::None,
            };
            LinkType::RAW
        } else {
            packet.link
        };
        let key = FragKey {
            src: ip.src_words(),
            dst: ip.dst_words(),
            id: frag.id,
            proto: if ip.v6 { 0 } else { ip.proto },
            v6: ip.v6,
        };
        let slot = match self.index.get(&key) {
            Some(&s) => s,
            None => match self.open(key, packet.ts, link) {
                Some(s) => s,
                None => return Push::Absorbed,
            },
        };
        let start = u32::from(frag.offset);
        let len = clamp(piece.data_end - piece.data_start);
        let end = start + len;
        let max_fragments = self.config.max_fragments;
        let Some(p) = self.slots.get_mut(slot as usize) else { return Push::Absorbed };
        // Where the new piece goes among the ranges held, and whether it overlaps one.
        let at = p.ranges.partition_point(|r| r.1 <= start);
        // The ranges this piece overlaps: `at..past`.
        let past = at + p.ranges.get(at..).unwrap_or(&[]).iter().take_while(|r| r.0 < end).count();
        match p.ranges.get(at) {
            Some(&r) if r == (start, end) => {
                // The same piece again: harmless if its bytes are the same.
                let same = p.data.get(start as usize..end as usize)
                    == frame.get(piece.data_start..piece.data_end);
                if same {
                    self.stats.duplicates += 1;
                } else if ip.v6 {
                    self.stats.dropped_overlap += 1;
                    self.release(slot);
                } else {
                    self.stats.overlapping += 1;
                    self.stats.inconsistent += 1;
                }
                return Push::Absorbed;
            }
            Some(_) if past > at && ip.v6 => {
                // RFC 5722: a datagram with overlapping fragments is discarded whole.
                self.stats.dropped_overlap += 1;
                self.release(slot);
                return Push::Absorbed;
            }
            _ => {}
        }
        let bad_end = match (frag.more, p.total) {
            // A piece past the announced end, or a second, different end.
            (_, Some(t)) if end > t => true,
            (false, Some(t)) => t != end,
            (false, None) => p.ranges.last().is_some_and(|r| r.1 > end),
            (true, _) => false,
        };
        // All but the last fragment carry a multiple of 8 bytes, and none is empty.
        let misaligned = (frag.more && len % 8 != 0) || len == 0;
        if end > self.config.max_datagram_bytes.min(MAX_PAYLOAD)
            || bad_end
            || misaligned
            || p.ranges.len() >= max_fragments
        {
            self.stats.dropped_invalid += 1;
            self.release(slot);
            return Push::Absorbed;
        }
        // Room under the global cap (never for this datagram's own bytes: it is the
        // newest, so the oldest others go first).
        let grow = (end as usize).saturating_sub(p.data.len())
            + if start == 0 { piece.head_end - piece.head_start } else { 0 };
        while self.bytes + grow > self.config.max_bytes {
            if !self.evict_oldest(slot) {
                self.stats.dropped_cap += 1;
                self.release(slot);
                return Push::Absorbed;
            }
        }
        let Some(p) = self.slots.get_mut(slot as usize) else { return Push::Absorbed };
        if p.data.len() < end as usize {
            p.data.resize(end as usize, 0);
        }
        let (Some(dst), Some(src)) = (
            p.data.get_mut(start as usize..end as usize),
            frame.get(piece.data_start..piece.data_end),
        ) else {
            return Push::Absorbed;
        };
        if past == at {
            dst.copy_from_slice(src);
            p.ranges.insert(at, (start, end));
        } else {
            // IPv4 overlap: the bytes held first win (Zeek's rule, and ours for TCP); the
            // piece fills only what is missing. Overlapping bytes that differ are the
            // signature of an evasion attempt and are counted.
            self.stats.overlapping += 1;
            let mut differ = false;
            let mut pos = start;
            for &(rs, re) in p.ranges.get(at..past).unwrap_or(&[]) {
                let (os, oe) = (rs.max(start), re.min(end));
                let rel = |x: u32| (x - start) as usize;
                if pos < os {
                    dst[rel(pos)..rel(os)].copy_from_slice(&src[rel(pos)..rel(os)]);
                }
                differ |= dst[rel(os)..rel(oe)] != src[rel(os)..rel(oe)];
                pos = pos.max(oe);
            }
            if pos < end {
                let rel = |x: u32| (x - start) as usize;
                dst[rel(pos)..].copy_from_slice(&src[rel(pos)..]);
            }
            if differ {
                self.stats.inconsistent += 1;
            }
            let merged_start = p.ranges.get(at).map_or(start, |r| r.0.min(start));
            let merged_end = p.ranges.get(past - 1).map_or(end, |r| r.1.max(end));
            p.ranges.drain(at..past);
            p.ranges.insert(at, (merged_start, merged_end));
        }
        p.wire_bytes += u64::from(packet.orig_len);
        if !frag.more {
            p.total = Some(end);
        }
        if start == 0 && p.head.is_empty() {
            p.head.extend_from_slice(frame.get(piece.head_start..piece.head_end).unwrap_or(&[]));
            p.patch = piece.patch;
            p.tiny = len < min_transport(proto_after(&ip, piece));
        }
        self.bytes += grow;
        let complete = p.total.is_some_and(|t| covers(&p.ranges, t)) && !p.head.is_empty();
        if !complete {
            return Push::Absorbed;
        }
        self.stats.reassembled += 1;
        if p.tiny {
            self.stats.tiny += 1;
        }
        let datagram = self.build(slot);
        self.release(slot);
        Push::Complete(datagram)
    }

    /// Start a datagram; makes room under `max_datagrams` first.
    fn open(&mut self, key: FragKey, ts: Timestamp, link: LinkType) -> Option<u32> {
        while self.index.len() >= self.config.max_datagrams {
            if !self.evict_oldest(u32::MAX) {
                return None;
            }
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Pending::default());
                u32::try_from(self.slots.len() - 1).ok()?
            }
        };
        let p = self.slots.get_mut(slot as usize)?;
        p.key = Some(key);
        p.generation = p.generation.wrapping_add(1);
        p.started = ts;
        p.link = Some(link);
        p.total = None;
        p.wire_bytes = 0;
        p.tiny = false;
        p.patch = Patch::None;
        self.order.push_back((slot, p.generation));
        self.index.insert(key, slot);
        Some(slot)
    }

    /// Drop the oldest datagram in flight other than `keep`; false if there is none.
    fn evict_oldest(&mut self, keep: u32) -> bool {
        while let Some((slot, generation)) = self.order.pop_front() {
            let live = self
                .slots
                .get(slot as usize)
                .is_some_and(|p| p.generation == generation && p.key.is_some());
            if !live {
                continue;
            }
            if slot == keep {
                // The datagram being added to is the oldest: keep its place.
                self.order.push_front((slot, generation));
                return false;
            }
            self.stats.dropped_cap += 1;
            self.release(slot);
            return true;
        }
        false
    }

    /// Free a slot (its datagram is done or dropped), keeping modest buffers.
    fn release(&mut self, slot: u32) {
        let Some(p) = self.slots.get_mut(slot as usize) else { return };
        let Some(key) = p.key.take() else { return };
        self.index.remove(&key);
        self.bytes = self.bytes.saturating_sub(p.data.len() + p.head.len());
        for buf in [&mut p.data, &mut p.head] {
            if buf.capacity() > KEEP_CAPACITY {
                *buf = Vec::new();
            } else {
                buf.clear();
            }
        }
        p.ranges.clear();
        self.free.push(slot);
    }

    /// The rebuilt frame of a complete datagram.
    fn build(&mut self, slot: u32) -> Datagram {
        let mut out = self.spare.pop().unwrap_or_default();
        out.clear();
        let Some(p) = self.slots.get(slot as usize) else {
            return Datagram { frame: out, link: LinkType::ETHERNET, orig_len: 0 };
        };
        let total = p.total.unwrap_or(0) as usize;
        out.extend_from_slice(&p.head);
        out.extend_from_slice(p.data.get(..total).unwrap_or(&[]));
        match p.patch {
            Patch::V4 { ip, hlen } => {
                let len = clamp(hlen + total).min(0xffff) as u16;
                if let Some(h) = out.get_mut(ip..ip + hlen) {
                    h[2..4].copy_from_slice(&len.to_be_bytes());
                    // Keep DF, clear MF and the offset.
                    h[6] &= 0x40;
                    h[7] = 0;
                    h[10] = 0;
                    h[11] = 0;
                    let sum = checksum(h);
                    h[10..12].copy_from_slice(&sum.to_be_bytes());
                }
            }
            Patch::V6 { ip, next_at, next } => {
                let payload =
                    clamp(p.head.len().saturating_sub(ip + 40) + total).min(0xffff) as u16;
                if let Some(b) = out.get_mut(ip + 4..ip + 6) {
                    b.copy_from_slice(&payload.to_be_bytes());
                }
                if let Some(b) = out.get_mut(next_at) {
                    *b = next;
                }
            }
            Patch::None => {}
        }
        let orig_len = u32::try_from(p.wire_bytes).unwrap_or(u32::MAX);
        Datagram { frame: out, link: p.link.unwrap_or(LinkType::ETHERNET), orig_len }
    }
}

/// Where a fragment's payload lies in its frame, and how to patch its headers if it is
/// the first.
#[derive(Copy, Clone, Debug)]
struct Piece {
    /// Where the headers kept from a first fragment start (0: the whole link layer).
    head_start: usize,
    /// Where the headers kept from a first fragment end (IPv6: before the fragment
    /// header, which the rebuilt datagram drops).
    head_end: usize,
    data_start: usize,
    data_end: usize,
    patch: Patch,
}

/// Find the fragment's payload: after the IPv4 header, or after the IPv6 fragment
/// header. `None` when the capture does not hold it whole.
fn locate(frame: &[u8], ip: &IpHeader) -> Option<Piece> {
    let off = ip.offset as usize;
    let end = off + ip.ip_len as usize;
    if end > frame.len() {
        return None;
    }
    if !ip.v6 {
        let hlen = usize::from(frame.get(off)? & 0x0f) * 4;
        let data_start = off + hlen;
        return Some(Piece {
            head_start: 0,
            head_end: data_start,
            data_start,
            data_end: end,
            patch: Patch::V4 { ip: off, hlen },
        });
    }
    // Walk to the fragment header, remembering which byte named it.
    let mut next_at = off + 6;
    let mut cur = off + 40;
    for _ in 0..crate::packet::MAX_IPV6_EXT_HEADERS {
        let next = *frame.get(next_at)?;
        let len = match next {
            44 => {
                let after = *frame.get(cur)?;
                let data_start = cur + 8;
                if data_start > end {
                    return None;
                }
                return Some(Piece {
                    head_start: 0,
                    head_end: cur,
                    data_start,
                    data_end: end,
                    patch: Patch::V6 { ip: off, next_at, next: after },
                });
            }
            0 | 43 | 60 | 139 | 140 => (usize::from(*frame.get(cur + 1)?) + 1) * 8,
            51 => (usize::from(*frame.get(cur + 1)?) + 2) * 4,
            _ => return None,
        };
        next_at = cur;
        cur += len;
    }
    None
}

/// The transport protocol behind a fragment's headers (for IPv6, the fragment header's
/// next header).
fn proto_after(ip: &IpHeader, piece: Piece) -> u8 {
    match piece.patch {
        Patch::V6 { next, .. } => next,
        _ => ip.proto,
    }
}

/// The smallest transport header a first fragment must hold.
fn min_transport(proto: u8) -> u32 {
    match proto {
        6 => 20,
        17 | 1 | 58 => 8,
        132 => 12,
        _ => 0,
    }
}

/// True when `ranges` (sorted, disjoint) cover `0..total` without a hole.
fn covers(ranges: &[(u32, u32)], total: u32) -> bool {
    let mut at = 0;
    for &(s, e) in ranges {
        if s != at {
            return false;
        }
        at = e;
    }
    at == total
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The IPv4 header checksum (RFC 1071) of `h` with its checksum field zeroed.
fn checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in h.chunks(2) {
        let word = match *pair {
            [a, b] => u16::from_be_bytes([a, b]),
            [a] => u16::from_be_bytes([a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests;
