//! The flow table's hash index: key hash -> slot id.
//!
//! Open addressing with linear probing over one `u32` per bucket: the slot id plus one
//! in the low bits (so an empty bucket is 0), above it up to four bits of displacement
//! (how far past its home the entry sits), and in the bits left a fingerprint, the top
//! bits of the key's hash. A key's home bucket is its hash's low bits. Deletion shifts
//! the entries after the hole back (no tombstones), so steady churn neither lengthens
//! the probes nor rehashes.
//!
//! Written by hand rather than using hashbrown's `HashTable<u32>`, which this replaced:
//! there a lookup reads a group of control bytes and then, at another address, the
//! slot id, two dependent cache misses once the index no longer fits the caches. Here
//! one bucket gives both the id and the fingerprint, in the same four bytes a bucket
//! (numbers in docs/performance.md, "Tracker"). An earlier version with eight-byte
//! buckets and 32-bit fingerprints was faster at a million flows but slower at 100,000
//! (`track_loop 100000`, in slot order: 207-268 against 126-180 ns/packet), where its
//! 2 MB no longer fitted the second-level cache and hashbrown's 640 KB did.
//!
//! Invariants: the bucket count is a power of two; at most seven eighths of the
//! buckets are used (the index doubles before an insert would pass that); every entry
//! sits in its home bucket or after it with no empty bucket in between.

/// An empty bucket.
const EMPTY: u32 = 0;

/// Buckets used at most, as a fraction of all buckets: 7/8, hashbrown's figure. With
/// sixteen buckets to a cache line, even the longer probes of an absent key (about 32
/// buckets on average at the full 7/8, far fewer below it) read one or two lines.
const MAX_LOAD_NUM: usize = 7;
const MAX_LOAD_DEN: usize = 8;

/// The slot id `NIL` stands for "none" in the table.
const NIL: u32 = super::table::NIL;

#[derive(Debug)]
pub(crate) struct Index {
    buckets: Vec<u32>,
    /// `buckets.len() - 1`.
    mask: usize,
    /// Buckets in use.
    used: usize,
    /// The low bits of an entry, which hold the slot id plus one.
    id_mask: u32,
    /// Where the displacement field starts (just above the id) and its largest value,
    /// which stands for "this far or farther: ask the key"; 0 when there is no room.
    disp_shift: u32,
    disp_max: u32,
    /// The bits left above both: the fingerprint.
    tag_mask: u32,
}

/// Bits of displacement (how far past its home an entry sits) kept in an entry when
/// the id leaves room, so that deleting (which moves the entries after the hole back)
/// rarely has to read a flow entry to learn another entry's home: churn through a full
/// 64k table, 603-638 ms a million packets without them, against 305-525 with
/// hashbrown (see docs/performance.md).
const DISP_BITS: u32 = 4;

impl Index {
    /// An index for slot ids below `capacity`, with room for `live` entries before it
    /// first grows.
    pub(crate) fn new(capacity: usize, live: usize) -> Self {
        // Enough bits for every id plus one, then the displacement, then the
        // fingerprint: at the default of 2^20 flows 21, 4 and 7 bits (hashbrown's tags
        // have 7 too); from 2^27 flows up no fingerprint is left and every probe
        // compares keys, from 2^31 up no displacement either.
        let id_bits = (usize::BITS - capacity.leading_zeros()).min(32);
        let id_mask = u32::MAX.checked_shr(32 - id_bits).unwrap_or(0);
        let disp_bits = DISP_BITS.min(32 - id_bits);
        let disp_max = (1u32 << disp_bits) - 1;
        let tag_mask = !(id_mask | disp_max.checked_shl(id_bits).unwrap_or(0));
        let buckets = buckets_for(live);
        Index {
            buckets: vec![EMPTY; buckets],
            mask: buckets - 1,
            used: 0,
            id_mask,
            disp_shift: id_bits,
            disp_max,
            tag_mask,
        }
    }

    /// Bytes allocated.
    pub(crate) fn allocation_size(&self) -> usize {
        self.buckets.capacity() * core::mem::size_of::<u32>()
    }

    /// The fingerprint of `hash`: its top bits, where they sit in an entry.
    #[inline(always)]
    fn tag(&self, hash: u64) -> u32 {
        (hash >> 32) as u32 & self.tag_mask
    }

    /// An entry without its displacement.
    #[inline(always)]
    fn bare(&self, e: u32) -> u32 {
        e & (self.tag_mask | self.id_mask)
    }

    /// Entry `e` (bare) sitting `d` buckets past its home.
    #[inline(always)]
    fn displaced(&self, e: u32, d: usize) -> u32 {
        let d = (d.min(self.disp_max as usize)) as u32;
        e | d.checked_shl(self.disp_shift).unwrap_or(0)
    }

    /// The home of entry `e`, sitting at `i`: from its displacement when that is
    /// known, else from its key's hash.
    #[inline(always)]
    fn home_of(&self, e: u32, i: usize, hash_of: impl Fn(u32) -> u64) -> usize {
        let d = e.checked_shr(self.disp_shift).unwrap_or(0) & self.disp_max;
        if d < self.disp_max {
            i.wrapping_sub(d as usize) & self.mask
        } else {
            self.home(hash_of(self.id_of(e)))
        }
    }

    /// The slot id in a used bucket.
    #[inline(always)]
    fn id_of(&self, e: u32) -> u32 {
        (e & self.id_mask).wrapping_sub(1)
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    #[inline(always)]
    fn at(&self, i: usize) -> u32 {
        self.buckets.get(i).copied().unwrap_or(EMPTY)
    }

    /// The first id stored under `hash` (by fingerprint) for which `eq` holds.
    #[inline(always)]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = self.tag(hash);
        let mut i = self.home(hash);
        loop {
            let e = self.at(i);
            if e == EMPTY {
                return None;
            }
            if e & self.tag_mask == tag && eq(self.id_of(e)) {
                return Some(self.id_of(e));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The first id stored under `hash`'s fingerprint, unchecked; `NIL` when none is.
    #[inline(always)]
    pub(crate) fn first(&self, hash: u64) -> u32 {
        self.find(hash, |_| true).unwrap_or(NIL)
    }

    /// Store `id` (below the capacity, not stored already) under `hash`; growing may
    /// need the hash of every stored id, which `hash_of` gives.
    pub(crate) fn insert(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) {
        debug_assert!(id < self.id_mask);
        if (self.used + 1) * MAX_LOAD_DEN > self.buckets.len() * MAX_LOAD_NUM {
            self.grow(hash_of);
        }
        self.place(hash, self.tag(hash) | (id + 1));
        self.used += 1;
    }

    /// Put entry `e` (bare) of `hash` in the first empty bucket from its home (there
    /// is one: the load is below 1).
    fn place(&mut self, hash: u64, e: u32) {
        let home = self.home(hash);
        let mut i = home;
        loop {
            match self.at(i) {
                EMPTY => {
                    let e = self.displaced(e, i.wrapping_sub(home) & self.mask);
                    self.set(i, e);
                    return;
                }
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    /// Twice the buckets, each entry placed again from its hash.
    fn grow(&mut self, hash_of: impl Fn(u32) -> u64) {
        let doubled = vec![EMPTY; self.buckets.len() * 2];
        let old = core::mem::replace(&mut self.buckets, doubled);
        self.mask = self.buckets.len() - 1;
        for e in old.into_iter().filter(|&e| e != EMPTY) {
            self.place(hash_of(self.id_of(e)), self.bare(e));
        }
    }

    /// Remove `id`, stored under `hash`; false when it is not there. Moving the entries
    /// after it needs their hashes, which `hash_of` gives.
    pub(crate) fn remove(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) -> bool {
        let want = self.tag(hash) | (id + 1);
        let mut hole = self.home(hash);
        loop {
            match self.at(hole) {
                EMPTY => return false,
                e if self.bare(e) == want => break,
                _ => hole = (hole + 1) & self.mask,
            }
        }
        // Shift back each following entry of the run that may sit at the hole: one
        // whose home is not after the hole (cyclically, up to where it sits now).
        let mut j = (hole + 1) & self.mask;
        loop {
            let e = self.at(j);
            if e == EMPTY {
                break;
            }
            let home = self.home_of(e, j, &hash_of);
            if j.wrapping_sub(home) & self.mask >= j.wrapping_sub(hole) & self.mask {
                let moved = self.displaced(self.bare(e), hole.wrapping_sub(home) & self.mask);
                self.set(hole, moved);
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.set(hole, EMPTY);
        self.used -= 1;
        true
    }

    #[inline(always)]
    fn set(&mut self, i: usize, e: u32) {
        if let Some(b) = self.buckets.get_mut(i) {
            *b = e;
        }
    }

    /// Remove every entry (the allocation is kept).
    pub(crate) fn clear(&mut self) {
        self.buckets.fill(EMPTY);
        self.used = 0;
    }

    /// Where `hash` probes from and the fingerprint it is stored with.
    #[cfg(test)]
    pub(crate) fn probe_of(&self, hash: u64) -> (usize, u32) {
        (self.home(hash), self.tag(hash))
    }

    /// Entries stored.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.used
    }
}

/// Buckets for `live` entries at no more than the maximum load (at least 16).
fn buckets_for(live: usize) -> usize {
    live.saturating_mul(MAX_LOAD_DEN).div_ceil(MAX_LOAD_NUM).next_power_of_two().max(16)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Every entry is reachable from its home without crossing an empty bucket.
    fn check_runs(x: &Index, hash_of: impl Fn(u32) -> u64) {
        for (i, &e) in x.buckets.iter().enumerate() {
            if e == EMPTY {
                continue;
            }
            let home = x.home(hash_of(x.id_of(e)));
            // The displacement, where it is known, says the same.
            assert_eq!(x.home_of(e, i, &hash_of), home, "bucket {i}");
            let mut k = home;
            while k != i {
                assert_ne!(x.buckets[k], EMPTY, "gap before bucket {i}");
                k = (k + 1) & x.mask;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

        /// Against a HashMap of ids, with hashes from a small set so that many ids
        /// share a home and a fingerprint; capacities give 8 to 0 fingerprint bits.
        #[test]
        fn matches_a_map(
            capacity in prop_oneof![Just(200usize), Just(1 << 24), Just(1 << 31), Just(u32::MAX as usize)],
            ops in proptest::collection::vec((any::<bool>(), 0u32..200, 0u64..12), 1..600),
        ) {
            // The hash of id `i` is fixed by the test's choice for it, kept in `hashes`.
            let mut hashes: HashMap<u32, u64> = HashMap::new();
            let mut x = Index::new(capacity, 4);
            for (add, id, h) in ops {
                let hash = h.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ h;
                if add {
                    if hashes.contains_key(&id) { continue; }
                    hashes.insert(id, hash);
                    let all = hashes.clone();
                    x.insert(hash, id, |i| all[&i]);
                } else {
                    let stored = hashes.get(&id).copied();
                    let all = hashes.clone();
                    let removed = x.remove(stored.unwrap_or(hash), id, |i| all[&i]);
                    prop_assert_eq!(removed, stored.is_some());
                    hashes.remove(&id);
                }
                prop_assert_eq!(x.len(), hashes.len());
                prop_assert!(x.used * MAX_LOAD_DEN <= x.buckets.len() * MAX_LOAD_NUM);
                check_runs(&x, |i| hashes[&i]);
                for (&id, &hash) in &hashes {
                    prop_assert_eq!(x.find(hash, |other| other == id), Some(id));
                    prop_assert!(x.first(hash) != NIL);
                }
            }
            x.clear();
            prop_assert_eq!(x.len(), 0);
            prop_assert!(x.buckets.iter().all(|&e| e == EMPTY));
        }
    }

    #[test]
    fn ids_and_fingerprints_share_the_word() {
        let x = Index::new(1 << 20, 16);
        assert_eq!(x.id_mask, (1 << 21) - 1);
        let e = x.tag(u64::MAX) | ((1 << 20) - 1 + 1);
        assert_eq!(x.id_of(e), (1 << 20) - 1);
        // 21 bits of id, 4 of displacement (0 here), 7 of fingerprint.
        assert_eq!(e & !x.id_mask, 0x7f << 25);
        assert_eq!((x.disp_shift, x.disp_max, x.tag_mask), (21, 15, 0x7f << 25));
        assert_eq!(x.displaced(e, 3) & !x.tag_mask & !x.id_mask, 3 << 21);
        assert_eq!(x.displaced(e, 99) & !x.tag_mask & !x.id_mask, 15 << 21);
        let full = Index::new(u32::MAX as usize, 16);
        assert_eq!((full.id_mask, full.tag(u64::MAX), full.id_of(NIL)), (u32::MAX, 0, NIL - 1));
        assert_eq!((full.disp_max, full.displaced(5, 3)), (0, 5));
        assert_eq!(Index::new(1, 16).id_mask, 1);
    }

    #[test]
    fn sizes() {
        assert_eq!(buckets_for(0), 16);
        assert_eq!(buckets_for(14), 16);
        assert_eq!(buckets_for(15), 32);
        assert_eq!(buckets_for(28), 32);
        assert_eq!(buckets_for(4096), 8192);
        assert_eq!(buckets_for(100_000), 131_072);
        assert_eq!(buckets_for(1 << 20), 1 << 21);
        // Room as promised: `live` entries go in without growing.
        let mut x = Index::new(1 << 20, 4096);
        for id in 0..4096u32 {
            x.insert(u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15), id, |_| unreachable!());
        }
        assert_eq!(x.buckets.len(), 8192);
    }
}
