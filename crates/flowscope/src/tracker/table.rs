//! The flow table: one hash lookup per packet, flow entries in a slab addressed by `u32`
//! ids, and intrusive doubly linked lists ordered by last activity, one per timeout
//! class.
//!
//! Invariants:
//! - every live slot is in exactly one list and in the hash index; free slots are in
//!   neither, have class `FREE`, and are chained from `free` (the one exception: while
//!   `release` empties the whole table, index entries stay until `clear_index`);
//! - within a list, slots are in the order they were last touched, oldest at the head;
//!   all slots of a list share one timeout, so the head is always the next to expire and
//!   the oldest of all heads is the least recently active flow;
//! - `len() <= capacity`; the slab is reserved up front, the index grows with the live
//!   count (never past 16/7 four-byte buckets per entry of `capacity`), and steady
//!   churn allocates nothing.

use core::hash::{BuildHasher, Hash};

use foldhash::fast::FixedState;

use super::index::Index;

/// "No slot" in the intrusive links.
pub(crate) const NIL: u32 = u32::MAX;

/// How many timeout classes (lists) there are.
pub(crate) const CLASSES: usize = 5;

/// The `class` of a free slot.
const FREE: u8 = u8::MAX;

#[derive(Debug)]
pub(crate) struct Slot<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    prev: u32,
    next: u32,
    /// When the slot was last linked at its list's tail (whole seconds of the caller's
    /// clock); lists are in `stamp` order.
    stamp: u32,
    class: u8,
}

impl<K, V> Slot<K, V> {
    /// The list (timeout class) the slot is on.
    #[inline]
    pub(crate) fn class(&self) -> u8 {
        self.class
    }

    /// When the slot was last moved to its list's tail.
    #[inline]
    pub(crate) fn stamp(&self) -> u32 {
        self.stamp
    }
}

#[derive(Copy, Clone, Debug)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List { head: NIL, tail: NIL };

/// Slab + hash index + LRU lists.
/// Live entries the index has room for before its first growth.
const INITIAL_INDEX: usize = 4096;

#[derive(Debug)]
pub(crate) struct Table<K, V> {
    index: Index,
    hasher: FixedState,
    slots: Vec<Slot<K, V>>,
    /// The first free slot; free slots are chained through their `next` link, which a
    /// free slot does not otherwise use (a `Vec` of free ids cost 4 bytes per flow).
    free: u32,
    lists: [List; CLASSES],
    len: usize,
    capacity: usize,
}

impl<K: Copy + Eq + Hash, V> Table<K, V> {
    /// A table for at most `capacity` live entries (at least 1; at most `u32::MAX - 1`).
    pub(crate) fn new(capacity: usize, seed: u64) -> Self {
        let capacity = capacity.clamp(1, (NIL - 1) as usize);
        Table {
            // Small at first, doubled as flows arrive (never shrunk), so steady-state
            // churn does not allocate (the zero-allocation test holds this). Sizing it
            // for `max_flows` up front put 10 MB of index under a capture with 100k
            // flows and a 1M cap: 514 ns/packet on that capture, against 267 with a
            // grown index (bench/compare).
            index: Index::new(capacity, capacity.min(INITIAL_INDEX)),
            hasher: FixedState::with_seed(seed),
            slots: Vec::with_capacity(capacity),
            free: NIL,
            lists: [EMPTY; CLASSES],
            len: 0,
            capacity,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// Bytes the table has allocated (index and slab).
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.index.allocation_size() + self.slots.capacity() * core::mem::size_of::<Slot<K, V>>()
    }

    #[inline]
    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The live slot holding `key`, trying slot `hint` first (a slot a lookup found
    /// earlier, which may have been freed or reused since; `NIL` for none): a live slot
    /// with an equal key is the one the index would find, since keys are unique.
    #[inline(always)]
    pub(crate) fn find_hinted(&self, key: &K, hint: u32) -> Option<u32> {
        match self.slots.get(hint as usize) {
            Some(s) if s.class != FREE && s.key == *key => Some(hint),
            _ => self.find(key),
        }
    }

    /// The first slot the index lists under `key`'s hash fingerprint, found without
    /// reading any entry: the slot holding `key`, unless another key with the same
    /// fingerprint comes first in the probe; `NIL` when no slot has the fingerprint,
    /// so `key` is not in the table. For looking ahead only: `find_hinted` checks it.
    #[inline(always)]
    pub(crate) fn candidate(&self, key: &K) -> u32 {
        self.index.first(self.hash(key))
    }

    /// The live slot holding `key`.
    #[inline(always)]
    pub(crate) fn find(&self, key: &K) -> Option<u32> {
        let slots = &self.slots;
        self.index.find(self.hash(key), |id| slots.get(id as usize).is_some_and(|s| s.key == *key))
    }

    #[inline]
    pub(crate) fn get(&self, id: u32) -> Option<&Slot<K, V>> {
        self.slots.get(id as usize)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut Slot<K, V>> {
        self.slots.get_mut(id as usize)
    }

    /// Insert a new entry at the tail of `class`. The caller makes room first: returns
    /// `None` (and inserts nothing) when the table is full.
    pub(crate) fn insert(&mut self, key: K, value: V, class: u8, stamp: u32) -> Option<u32> {
        if self.is_full() {
            return None;
        }
        let hash = self.hash(&key);
        let slot = Slot { key, value, prev: NIL, next: NIL, stamp, class };
        let id = match self.slots.get_mut(self.free as usize) {
            Some(s) => {
                let id = self.free;
                self.free = s.next;
                *s = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash, id, slot_hashes(&self.slots, &self.hasher));
        self.link_tail(id, class, stamp);
        self.len += 1;
        Some(id)
    }

    /// Remove a live entry; its slot becomes free (its value stays until reused).
    pub(crate) fn remove(&mut self, id: u32) {
        let Some(slot) = self.slots.get(id as usize) else { return };
        let hash = self.hash(&slot.key);
        if self.index.remove(hash, id, slot_hashes(&self.slots, &self.hasher)) {
            self.free_slot(id);
        }
    }

    /// Free a live entry's slot, leaving its index entry behind: for emptying the whole
    /// table, with `clear_index` once at the end. Until then the index must not be used.
    pub(crate) fn release(&mut self, id: u32) {
        if self.slots.get(id as usize).is_some_and(|s| s.class != FREE) {
            self.free_slot(id);
        }
    }

    /// Unlink a live slot and put it on the free list.
    fn free_slot(&mut self, id: u32) {
        self.unlink(id);
        if let Some(s) = self.slots.get_mut(id as usize) {
            s.class = FREE;
            s.next = self.free;
            self.free = id;
        }
        self.len -= 1;
    }

    /// Empty the index after every entry was `release`d (its allocation is kept).
    pub(crate) fn clear_index(&mut self) {
        debug_assert_eq!(self.len, 0, "clear_index with live entries");
        self.index.clear();
    }

    /// Move a live entry to the tail of `class` (it was just active); `stamp` must be no
    /// earlier than any stamp already on that list.
    #[inline]
    pub(crate) fn touch(&mut self, id: u32, class: u8, stamp: u32) {
        self.unlink(id);
        self.link_tail(id, class, stamp);
    }

    /// The least recently touched entry of `class`.
    #[inline]
    pub(crate) fn head(&self, class: usize) -> Option<u32> {
        let h = self.lists.get(class)?.head;
        (h != NIL).then_some(h)
    }

    fn link_tail(&mut self, id: u32, class: u8, stamp: u32) {
        let Some(list) = self.lists.get_mut(usize::from(class)) else { return };
        let old_tail = list.tail;
        list.tail = id;
        if old_tail == NIL {
            list.head = id;
        }
        if let Some(s) = self.slots.get_mut(old_tail as usize) {
            s.next = id;
        }
        if let Some(s) = self.slots.get_mut(id as usize) {
            s.prev = old_tail;
            s.next = NIL;
            s.class = class;
            s.stamp = stamp;
        }
    }

    fn unlink(&mut self, id: u32) {
        // A free slot is on no list (its `next` chains the free list).
        let Some(s) = self.slots.get(id as usize).filter(|s| s.class != FREE) else { return };
        let (prev, next, class) = (s.prev, s.next, usize::from(s.class));
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => {
                if let Some(l) = self.lists.get_mut(class) {
                    l.head = next;
                }
            }
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => {
                if let Some(l) = self.lists.get_mut(class) {
                    l.tail = prev;
                }
            }
        }
        if let Some(s) = self.slots.get_mut(id as usize) {
            s.prev = NIL;
            s.next = NIL;
        }
    }
}

/// The hash of the key in each slot, for the index when it moves entries (growing, or
/// deleting an entry whose neighbours' homes it cannot tell from their buckets).
fn slot_hashes<'a, K: Hash, V>(
    slots: &'a [Slot<K, V>],
    hasher: &'a FixedState,
) -> impl Fn(u32) -> u64 + 'a {
    move |id| slots.get(id as usize).map_or(0, |s| hasher.hash_one(&s.key))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn walk(t: &Table<u64, u64>, class: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = t.lists[class].head;
        while cur != NIL {
            out.push(cur);
            cur = t.slots[cur as usize].next;
        }
        out
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u8),
        Remove(u64),
        Touch(u64, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..64, 0u8..5).prop_map(|(k, c)| Op::Insert(k, c)),
            (0u64..64).prop_map(Op::Remove),
            (0u64..64, 0u8..5).prop_map(|(k, c)| Op::Touch(k, c)),
        ]
    }

    /// A candidate is the key's slot unless another key with the same fingerprint comes
    /// first in the probe; checked through `find_hinted`, it finds what `find` finds
    /// either way.
    #[test]
    fn candidates_checked_find_what_find_finds() {
        let n = 50_000u64;
        let mut t: Table<u64, ()> = Table::new(n as usize + 2, 3);
        for k in 0..n {
            t.insert(k * 7919, (), 0, 0).unwrap();
        }
        let (mut right, mut wrong, mut absent) = (0, 0, 0);
        for k in 0..2 * n {
            let key = k * 7919;
            let candidate = t.candidate(&key);
            let found = t.find(&key);
            assert_eq!(t.find_hinted(&key, candidate), found, "key {key}");
            // No candidate means no such key (`FlowTracker::warm` relies on it).
            assert!(candidate != NIL || found.is_none(), "key {key}");
            match found {
                Some(id) if id == candidate => right += 1,
                Some(_) => wrong += 1,
                None => absent += usize::from(candidate == NIL),
            }
        }
        // 12 bits of fingerprint at this capacity (16 of id, 4 of displacement): a wrong
        // candidate, or one for an absent key, is rare.
        assert_eq!(right + wrong, n as usize);
        assert!(wrong * 200 < n as usize, "{wrong} wrong candidates of {n}");
        assert!(absent * 200 > 199 * n as usize, "{absent} of {n} absent keys had no candidate");

        // Two keys with the same home bucket and fingerprint (found by search: 28 bits
        // to match, so some 2^14 keys give a pair): the later one's candidate is the
        // earlier one's slot.
        let mut seen = HashMap::new();
        let (a, b) = (1u64..1 << 24)
            .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .find_map(|key| seen.insert(t.index.probe_of(t.hash(&key)), key).map(|a| (a, key)))
            .unwrap();
        let ia = t.insert(a, (), 1, 0).unwrap();
        let ib = t.insert(b, (), 1, 0).unwrap();
        assert_eq!(t.candidate(&b), ia);
        assert_eq!(t.find_hinted(&b, t.candidate(&b)), Some(ib));
        assert_eq!(t.find(&b), Some(ib));
        t.remove(ia);
        assert_eq!(t.candidate(&b), ib);
        assert_eq!(t.find(&a), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

        /// The table against a HashMap model plus per-class order vectors.
        #[test]
        fn matches_a_hashmap_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut t: Table<u64, u64> = Table::new(32, 1);
            let mut model: HashMap<u64, (u64, u8)> = HashMap::new();
            let mut order: Vec<Vec<u64>> = vec![Vec::new(); CLASSES];
            for op in ops {
                match op {
                    Op::Insert(k, c) => {
                        if model.contains_key(&k) { continue; }
                        let r = t.insert(k, k * 10, c, 0);
                        if model.len() >= 32 {
                            prop_assert!(r.is_none());
                        } else {
                            prop_assert!(r.is_some());
                            model.insert(k, (k * 10, c));
                            order[c as usize].push(k);
                        }
                    }
                    Op::Remove(k) => {
                        if let Some((_, c)) = model.remove(&k) {
                            let id = t.find(&k).unwrap();
                            t.remove(id);
                            order[c as usize].retain(|&x| x != k);
                        }
                        prop_assert!(t.find(&k).is_none());
                    }
                    Op::Touch(k, c) => {
                        if let Some(entry) = model.get_mut(&k) {
                            let id = t.find(&k).unwrap();
                            t.touch(id, c, 0);
                            order[entry.1 as usize].retain(|&x| x != k);
                            entry.1 = c;
                            order[c as usize].push(k);
                        }
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert!(t.len() <= 32);
                // Freed slots are reused: the slab never outgrows the capacity, and every
                // slot not live is on the free chain.
                prop_assert!(t.slots.len() <= 32);
                let mut free = 0;
                let mut cur = t.free;
                while cur != NIL && free <= 32 {
                    prop_assert_eq!(t.slots[cur as usize].class, FREE);
                    free += 1;
                    cur = t.slots[cur as usize].next;
                }
                prop_assert_eq!(free + t.len(), t.slots.len());
                for k in 0..64u64 {
                    for hint in [NIL, 0, 5, 31, t.candidate(&k)] {
                        prop_assert_eq!(t.find_hinted(&k, hint), t.find(&k));
                    }
                }
                for (k, (v, _)) in &model {
                    let id = t.find(k).unwrap();
                    prop_assert_eq!(t.get(id).unwrap().value, *v);
                }
                for (c, expected) in order.iter().enumerate() {
                    let keys: Vec<u64> = walk(&t, c).iter().map(|&id| t.slots[id as usize].key).collect();
                    prop_assert_eq!(&keys, expected);
                }
            }
        }
    }
}
