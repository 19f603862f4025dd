//! The out-of-order buffer: disjoint, non-adjacent byte ranges sorted by offset.

/// Spare range buffers kept for reuse, so a stream that keeps reordering does not
/// allocate for every out-of-order segment.
const POOL: usize = 4;

/// Only buffers this small go back to the pool (a few segments' worth); bigger ones are
/// freed, so a side that once buffered a megabyte does not keep it while in order.
const POOL_KEEP_CAPACITY: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct OutOfOrder {
    /// The bytes held: the sum of the ranges' lengths. No range is empty, so this is 0
    /// exactly when there are no ranges, which the in-order path asks on every segment
    /// without reaching into `store`.
    len: usize,
    /// The ranges and the spare buffers, made when the first segment is buffered and kept
    /// until the reassembler is reset. Inline they were 48 bytes in each side of every
    /// stream state, most of which never buffer a byte; boxed, 8 (with `FinAt`, a side's
    /// state went 192 -> 144 bytes, `reassembly::tests::a_sides_state_is_144_bytes`).
    store: Option<Box<Store>>,
}

#[derive(Debug, Default)]
struct Store {
    // Invariant: sorted by start; for consecutive ranges a, b: a.end < b.start (no
    // overlap, no adjacency); no range is empty.
    ranges: Vec<(u64, Vec<u8>)>,
    pool: Vec<Vec<u8>>,
}

impl OutOfOrder {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ranges held, in order.
    fn held(&self) -> &[(u64, Vec<u8>)] {
        self.store.as_deref().map_or(&[], |s| &s.ranges)
    }

    /// How many disjoint ranges are held.
    pub(super) fn ranges(&self) -> usize {
        self.held().len()
    }

    /// True when `[start, end)` overlaps or touches no held range, so inserting it would
    /// add a range.
    pub(super) fn is_separate(&self, start: u64, end: u64) -> bool {
        // Past the last range, the usual place for a segment behind a hole: no search
        // (with `uncovered`'s, 28 instructions fewer a segment behind a hole on
        // `gopacket__cip.pcap`; callgrind, the CLI's `flows`: 61.20M -> 60.64M).
        if let Some(last_end) = self.last_end() {
            if last_end <= start {
                return last_end < start;
            }
        }
        let held = self.held();
        let i = held.partition_point(|(s, d)| (s + d.len() as u64) < start);
        held.get(i).map_or(true, |(s, _)| *s > end)
    }

    pub(super) fn first_start(&self) -> Option<u64> {
        self.held().first().map(|r| r.0)
    }

    /// One past the last buffered byte (`None` when nothing is buffered).
    fn last_end(&self) -> Option<u64> {
        self.held().last().map(|(s, d)| s + d.len() as u64)
    }

    /// Bytes of `[start, end)` no range covers.
    pub(super) fn uncovered(&self, start: u64, end: u64) -> usize {
        if self.last_end().map_or(true, |last_end| last_end <= start) {
            // Past every range (see `is_separate`).
            return (end - start) as usize;
        }
        let held = self.held();
        let mut covered = 0u64;
        let first = held.partition_point(|(s, d)| (s + d.len() as u64) <= start);
        for (s, d) in &held[first..] {
            let e = s + d.len() as u64;
            if e <= start {
                continue;
            }
            if *s >= end {
                break;
            }
            covered += e.min(end) - (*s).max(start);
        }
        (end - start - covered) as usize
    }

    /// True when some byte of `data`, placed at `start`, differs from a buffered byte at
    /// the same offset.
    pub(super) fn differs(&self, start: u64, data: &[u8]) -> bool {
        let end = start + data.len() as u64;
        if self.last_end().map_or(true, |last_end| last_end <= start) {
            return false;
        }
        let held = self.held();
        let first = held.partition_point(|(s, d)| (s + d.len() as u64) <= start);
        for (s, d) in &held[first..] {
            if *s >= end {
                break;
            }
            let (lo, hi) = ((*s).max(start), (s + d.len() as u64).min(end));
            let held = &d[(lo - s) as usize..(hi - s) as usize];
            if held != &data[(lo - start) as usize..(hi - start) as usize] {
                return true;
            }
        }
        false
    }

    /// Add `data` at `start`, merging with every range it overlaps or touches. With
    /// `replace`, the new bytes overwrite buffered ones; otherwise buffered bytes stay.
    pub(super) fn insert(&mut self, start: u64, data: &[u8], replace: bool) {
        // The reassembler never buffers an empty segment; one would become an empty
        // range and break the ranges' invariant.
        debug_assert!(!data.is_empty(), "empty segment buffered at {start}");
        let store = self.store.get_or_insert_with(Box::default);
        // The commonest case: the segment starts exactly where the last range ends (data
        // keeps arriving behind a hole). Appending needs no search, no zero-filling and
        // no merge, and overlaps nothing, so `replace` does not matter. On
        // `gopacket__cip.pcap` (20,155 segments ahead of a hole) `insert` went from 7.30M
        // to 4.51M instructions (callgrind, the CLI's `flows`).
        if let Some((s, d)) = store.ranges.last_mut() {
            if *s + d.len() as u64 == start {
                d.extend_from_slice(data);
                self.len += data.len();
                return;
            }
        }
        let end = start + data.len() as u64;
        let ranges = &mut store.ranges;
        // Ranges [i, j) overlap or touch [start, end].
        let i = ranges.partition_point(|(s, d)| (s + d.len() as u64) < start);
        let j = ranges.partition_point(|(s, _)| *s <= end);
        let lo = ranges.get(i).filter(|_| i < j).map_or(start, |r| r.0.min(start));
        let hi = ranges[i..j].last().map_or(end, |(s, d)| (s + d.len() as u64).max(end));
        if i < j && ranges[i].0 <= start {
            // The common case: the segment extends the range it starts in (data keeps
            // arriving behind a hole). That range's storage grows in place, so the cost
            // is per byte inserted, not per byte buffered; rebuilding the whole range for
            // every segment made a long run behind one hole quadratic.
            let mut base = std::mem::take(&mut ranges[i].1);
            let base_len = base.len();
            base.resize((hi - lo) as usize, 0);
            let old_rest =
                store.merge_tail(&mut base, lo, i + 1..j, start, data, replace, base_len);
            self.len = self.len - base_len - old_rest + base.len();
            store.ranges[i].1 = base;
        } else {
            let mut merged = store.pool.pop().unwrap_or_default();
            merged.clear();
            merged.resize((hi - lo) as usize, 0);
            let old = store.merge_tail(&mut merged, lo, i..j, start, data, replace, 0);
            self.len = self.len - old + merged.len();
            store.ranges.insert(i, (lo, merged));
        }
    }

    /// Take the first range out.
    pub(super) fn pop_front(&mut self) -> Option<(u64, Vec<u8>)> {
        let store = self.store.as_deref_mut().filter(|s| !s.ranges.is_empty())?;
        let (s, d) = store.ranges.remove(0);
        self.len -= d.len();
        Some((s, d))
    }

    /// Give a drained range's storage back for reuse.
    pub(super) fn recycle(&mut self, v: Vec<u8>) {
        if let Some(store) = self.store.as_deref_mut() {
            store.recycle(v);
        }
    }

    /// Drop every buffered byte below `offset` (delivered by other means).
    pub(super) fn discard_below(&mut self, offset: u64) {
        let Some(store) = self.store.as_deref_mut() else { return };
        while let Some((s, d)) = store.ranges.first_mut() {
            let e = *s + d.len() as u64;
            if e <= offset {
                self.len -= d.len();
                let (_, v) = store.ranges.remove(0);
                store.recycle(v);
            } else {
                if *s < offset {
                    let cut = (offset - *s) as usize;
                    d.drain(..cut);
                    *s = offset;
                    self.len -= cut;
                }
                break;
            }
        }
    }
}

impl Store {
    /// Fill `merged` (covering from `lo`, its first `keep` bytes already old data) with
    /// `data` at `start` and the ranges `idx`, which are removed; old bytes win unless
    /// `replace`. Returns how many old bytes the removed ranges held.
    #[allow(clippy::too_many_arguments)]
    fn merge_tail(
        &mut self,
        merged: &mut [u8],
        lo: u64,
        idx: std::ops::Range<usize>,
        start: u64,
        data: &[u8],
        replace: bool,
        keep: usize,
    ) -> usize {
        let at = (start - lo) as usize;
        if !replace {
            // New bytes first (past what is kept), old ranges on top of them.
            let skip = keep.saturating_sub(at).min(data.len());
            merged[at + skip..at + data.len()].copy_from_slice(&data[skip..]);
        }
        let mut old = 0usize;
        for (s, d) in self.ranges.drain(idx) {
            let o = (s - lo) as usize;
            merged[o..o + d.len()].copy_from_slice(&d);
            old += d.len();
            if self.pool.len() < POOL && d.capacity() <= POOL_KEEP_CAPACITY {
                self.pool.push(d);
            }
        }
        if replace {
            merged[at..at + data.len()].copy_from_slice(data);
        }
        old
    }

    /// Keep a range's storage for reuse, if the pool has room and it is small.
    fn recycle(&mut self, mut v: Vec<u8>) {
        if self.pool.len() < POOL && v.capacity() <= POOL_KEEP_CAPACITY {
            v.clear();
            self.pool.push(v);
        }
    }
}

/// The most recent delivered bytes of a stream, in a ring indexed by stream offset, to
/// compare retransmissions against.
#[derive(Debug)]
pub(super) struct Recent {
    // Invariant: for every offset `o` in `[valid_from, next)` with `o + ring.len() >= next`
    // (`next` the reassembler's), `ring[o % ring.len()]` is the byte delivered at `o`.
    ring: Box<[u8]>,
    valid_from: u64,
}

impl Recent {
    /// Keep the last `bytes` bytes delivered from `next` on (`bytes` > 0).
    pub(super) fn new(bytes: usize, next: u64) -> Self {
        debug_assert!(bytes > 0);
        Recent { ring: vec![0; bytes].into_boxed_slice(), valid_from: next }
    }

    pub(super) fn window(&self) -> usize {
        self.ring.len()
    }

    /// `bytes` were delivered at `offset`.
    pub(super) fn record(&mut self, offset: u64, bytes: &[u8]) {
        let n = self.ring.len();
        let keep = bytes.len().min(n);
        let (mut offset, mut bytes) =
            (offset + (bytes.len() - keep) as u64, &bytes[bytes.len() - keep..]);
        while !bytes.is_empty() {
            let at = (offset % n as u64) as usize;
            let take = bytes.len().min(n - at);
            self.ring[at..at + take].copy_from_slice(&bytes[..take]);
            (offset, bytes) = (offset + take as u64, &bytes[take..]);
        }
    }

    /// Nothing before `next` can be compared any more: a gap was skipped up to it, or
    /// (`next` 0, the storage kept for reuse) a new stream starts.
    pub(super) fn forget_below(&mut self, next: u64) {
        self.valid_from = next;
    }

    /// True when some byte of `data`, placed at `start`, differs from a kept delivered
    /// byte at the same offset (`next` the reassembler's next offset).
    pub(super) fn differs(&self, start: u64, data: &[u8], next: u64) -> bool {
        let n = self.ring.len() as u64;
        let lo = start.max(self.valid_from).max(next.saturating_sub(n));
        let hi = (start + data.len() as u64).min(next);
        let mut o = lo;
        while o < hi {
            let at = (o % n) as usize;
            let take = ((hi - o) as usize).min(self.ring.len() - at);
            let new = &data[(o - start) as usize..(o - start) as usize + take];
            if &self.ring[at..at + take] != new {
                return true;
            }
            o += take as u64;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Offsets the model holds: a byte per offset, or none.
    const SPACE: usize = 320;

    fn op() -> impl Strategy<Value = (u64, Vec<u8>, bool)> {
        (0u64..256, proptest::collection::vec(any::<u8>(), 1..40), any::<bool>())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

        /// The buffer against "bytes at offsets": after every insert, its length, its
        /// answers for every small window, and finally its ranges and bytes.
        #[test]
        fn matches_bytes_at_offsets(ops in proptest::collection::vec(op(), 1..24)) {
            let mut buf = OutOfOrder::default();
            let mut model: Vec<Option<u8>> = vec![None; SPACE];
            for (start, data, replace) in ops {
                buf.insert(start, &data, replace);
                for (i, &b) in data.iter().enumerate() {
                    let slot = &mut model[start as usize + i];
                    if replace || slot.is_none() {
                        *slot = Some(b);
                    }
                }
                let held = model.iter().filter(|b| b.is_some()).count();
                prop_assert_eq!(buf.len(), held);
                prop_assert_eq!(buf.is_empty(), held == 0);
                for start in (0..SPACE as u64 - 8).step_by(3) {
                    for len in [0u64, 1, 2, 7] {
                        let end = start + len;
                        let (s, e) = (start as usize, end as usize);
                        let gaps = model[s..e].iter().filter(|b| b.is_none()).count();
                        prop_assert_eq!(buf.uncovered(start, end), gaps, "[{}, {})", start, end);
                        // Overlapping or touching: a held byte in [start - 1, end].
                        let near = model[s.saturating_sub(1)..=e].iter().any(|b| b.is_some());
                        prop_assert_eq!(buf.is_separate(start, end), !near, "[{}, {})", start, end);
                    }
                }
            }
            let mut ranges = 0;
            let mut last_end = None;
            while let Some((s, d)) = buf.pop_front() {
                ranges += 1;
                // Sorted, and neither overlapping nor touching the one before.
                prop_assert!(last_end.map_or(true, |e| e < s), "{:?} then {}", last_end, s);
                for (i, &b) in d.iter().enumerate() {
                    prop_assert_eq!(model[s as usize + i], Some(b));
                }
                last_end = Some(s + d.len() as u64);
            }
            let runs = model.windows(2).filter(|w| w[0].is_none() && w[1].is_some()).count()
                + usize::from(model[0].is_some());
            prop_assert_eq!(ranges, runs);
        }
    }
}
