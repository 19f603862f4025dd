//! Canonical flow keys.
//!
//! Every key stores its two endpoints in a canonical order (the numerically smaller
//! endpoint first), so both directions of a conversation build the same key; the
//! extractor reports which way the packet went as an [`Orientation`].

use core::fmt;
use core::hash::{Hash, Hasher};
use core::net::{IpAddr, SocketAddr};

use super::community_id::{community_id_v1, icmp_is_one_way, CommunityId};
use super::Orientation;

use crate::packet::{addr_to_words, words_to_addr};

/// A bidirectional 5-tuple key: two (address, port) endpoints in canonical order, the IP
/// protocol, and a VLAN id (0 unless the extractor puts VLANs in the key).
///
/// Invariant: `(lo_addr, lo_port) <= (hi_addr, hi_port)`, comparing addresses as
/// big-endian numbers; both addresses are of the family `v6` says, each stored as two
/// big-endian 64-bit words (IPv4 in the top 32 bits of the first). `Copy`, 40 bytes, no
/// heap. Ordered by the low endpoint, the high endpoint, then protocol, family and VLAN.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FiveTupleKey {
    lo_addr: [u64; 2],
    hi_addr: [u64; 2],
    /// The ports, protocol, family and VLAN id in one word, most significant first
    /// (`lo_port << 48 | hi_port << 32 | proto << 24 | v6 << 16 | vlan`), so comparing
    /// and hashing read five words: the tracker compares a key on every lookup, and with
    /// the fields apart a packet of one flow took 970 instructions, with them packed 928
    /// (callgrind, `track_loop 1 200000`). The packing keeps the fields' order, so the
    /// derived ordering is the one the separate fields had.
    meta: u64,
}

/// An address's two words as one number, the first word high.
#[inline(always)]
fn wide(w: [u64; 2]) -> u128 {
    u128::from(w[0]) << 64 | u128::from(w[1])
}

/// `FiveTupleKey::meta` from its fields.
#[inline]
const fn pack(lo_port: u16, hi_port: u16, proto: u8, v6: bool, vlan: u16) -> u64 {
    (lo_port as u64) << 48
        | (hi_port as u64) << 32
        | (proto as u64) << 24
        | (v6 as u64) << 16
        | vlan as u64
}

impl FiveTupleKey {
    /// An all-zero placeholder (0.0.0.0:0 <-> 0.0.0.0:0, protocol 0).
    pub const EMPTY: FiveTupleKey = FiveTupleKey { lo_addr: [0; 2], hi_addr: [0; 2], meta: 0 };

    /// The key for a packet from `(src, sport)` to `(dst, dport)`, and the packet's
    /// orientation. Both directions give the same key with opposite orientations; a packet
    /// whose endpoints are equal is `Forward`.
    ///
    /// Mixed address families cannot come out of the decoder; if given, the IPv4 address
    /// is treated as its IPv4-mapped IPv6 form so the key stays well-defined.
    #[inline]
    pub fn new(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        proto: u8,
        vlan: u16,
    ) -> (Self, Orientation) {
        let (src, dst) = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V6(_)) => (IpAddr::V6(s.to_ipv6_mapped()), dst),
            (IpAddr::V6(_), IpAddr::V4(d)) => (src, IpAddr::V6(d.to_ipv6_mapped())),
            _ => (src, dst),
        };
        let (s, v6) = addr_to_words(src);
        let (d, _) = addr_to_words(dst);
        Self::from_words(s, sport, d, dport, proto, v6, vlan)
    }

    /// The key from addresses already in word form (see [`crate::packet::IpHeader`]):
    /// the extractor's path, with no `IpAddr` in between.
    #[inline]
    pub fn from_words(
        src: [u64; 2],
        sport: u16,
        dst: [u64; 2],
        dport: u16,
        proto: u8,
        v6: bool,
        vlan: u16,
    ) -> (Self, Orientation) {
        // The same order as comparing `(src, sport)` with `(dst, dport)`, the addresses
        // as one 128-bit number each.
        let (s, d) = (wide(src), wide(dst));
        let forward = (s < d) | ((s == d) & (sport <= dport));
        // Which way a packet goes is a coin toss on real traffic, so `forward` is
        // computed without `&&` and `||`: with them LLVM branched on it, and the branch
        // missed on about every other packet (0.47 mispredictions a packet on
        // `make_large`, callgrind's branch simulation; 0 now). The selects below then
        // compile to conditional moves: 15 instructions more a packet (`track_loop 1`,
        // 796 -> 811, where the branch never missed) against roughly 15-20 cycles per
        // miss saved. One key is built from the selected words, not a literal per case:
        // two literals were assembled on the stack and copied out with wide loads over
        // narrow stores (store-forwarding stalls; one flow went from 57 to 65-74
        // ns/packet, `track_loop 1`).
        let pick = |a: u64, b: u64| if forward { a } else { b };
        let key = FiveTupleKey {
            lo_addr: [pick(src[0], dst[0]), pick(src[1], dst[1])],
            hi_addr: [pick(dst[0], src[0]), pick(dst[1], src[1])],
            meta: pack(
                pick(u64::from(sport), u64::from(dport)) as u16,
                pick(u64::from(dport), u64::from(sport)) as u16,
                proto,
                v6,
                vlan,
            ),
        };
        (key, if forward { Orientation::Forward } else { Orientation::Reverse })
    }

    /// The canonical first endpoint.
    #[inline]
    pub fn lo(&self) -> (IpAddr, u16) {
        (words_to_addr(self.lo_addr, self.is_ipv6()), (self.meta >> 48) as u16)
    }

    /// The canonical second endpoint.
    #[inline]
    pub fn hi(&self) -> (IpAddr, u16) {
        (words_to_addr(self.hi_addr, self.is_ipv6()), (self.meta >> 32) as u16)
    }

    /// The sending endpoint of a packet with orientation `o`.
    #[inline]
    pub fn src(&self, o: Orientation) -> (IpAddr, u16) {
        match o {
            Orientation::Forward => self.lo(),
            Orientation::Reverse => self.hi(),
        }
    }

    /// The receiving endpoint of a packet with orientation `o`.
    #[inline]
    pub fn dst(&self, o: Orientation) -> (IpAddr, u16) {
        self.src(o.flip())
    }

    /// The IP protocol number.
    #[inline]
    pub fn proto(&self) -> u8 {
        (self.meta >> 24) as u8
    }

    /// True for an IPv6 key.
    #[inline]
    pub fn is_ipv6(&self) -> bool {
        (self.meta >> 16) & 1 == 1
    }

    /// The VLAN id in the key (0 when VLANs are not part of the key).
    #[inline]
    pub fn vlan(&self) -> u16 {
        self.meta as u16
    }

    /// The Community ID v1 of this flow, with `originator` the orientation of the side
    /// that started it.
    ///
    /// For every protocol but one-way ICMP messages (errors, redirects, ...) the result is
    /// the same whatever `originator` is. For one-way ICMP the specification hashes the
    /// sender first, unordered, so the originator matters.
    pub fn community_id(&self, seed: u16, originator: Orientation) -> CommunityId {
        let (src, sport) = self.src(originator);
        let (dst, dport) = self.dst(originator);
        let proto = self.proto();
        let has_ports = matches!(proto, 1 | 6 | 17 | 58 | 132);
        let one_way = match proto {
            // The ICMP "source port" is the type and the "destination port" the code.
            1 => icmp_is_one_way(false, sport as u8),
            58 => icmp_is_one_way(true, sport as u8),
            _ => false,
        };
        community_id_v1(seed, src, dst, proto, has_ports.then_some((sport, dport)), one_way)
    }
}

impl Hash for FiveTupleKey {
    /// Five word-sized writes instead of one per field: with the derived impl, hashing
    /// was the largest single function in the tracker's profile (8% of samples).
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.lo_addr[0]);
        state.write_u64(self.lo_addr[1]);
        state.write_u64(self.hi_addr[0]);
        state.write_u64(self.hi_addr[1]);
        state.write_u64(self.meta);
    }
}

impl fmt::Debug for FiveTupleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (la, lp) = self.lo();
        let (ha, hp) = self.hi();
        // SocketAddr's Display brackets IPv6 addresses: `[2001:db8::1]:443`.
        let (lo, hi) = (SocketAddr::new(la, lp), SocketAddr::new(ha, hp));
        write!(f, "FiveTupleKey({} {lo} <-> {hi}", self.proto())?;
        if self.vlan() != 0 {
            write!(f, " vlan {}", self.vlan())?;
        }
        f.write_str(")")
    }
}

/// A bidirectional IP address pair key (plus VLAN id, 0 unless configured).
///
/// Invariant: `lo <= hi` as big-endian numbers; same family layout as [`FiveTupleKey`].
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPairKey {
    lo: [u64; 2],
    hi: [u64; 2],
    v6: bool,
    vlan: u16,
}

impl IpPairKey {
    /// The key for a packet from `src` to `dst`, and its orientation.
    #[inline]
    pub fn new(src: IpAddr, dst: IpAddr, vlan: u16) -> (Self, Orientation) {
        let (k, o) = FiveTupleKey::new(src, 0, dst, 0, 0, vlan);
        (IpPairKey { lo: k.lo_addr, hi: k.hi_addr, v6: k.is_ipv6(), vlan }, o)
    }

    /// The canonical first address.
    #[inline]
    pub fn lo(&self) -> IpAddr {
        words_to_addr(self.lo, self.v6)
    }

    /// The canonical second address.
    #[inline]
    pub fn hi(&self) -> IpAddr {
        words_to_addr(self.hi, self.v6)
    }

    /// The VLAN id in the key.
    #[inline]
    pub fn vlan(&self) -> u16 {
        self.vlan
    }
}

impl fmt::Debug for IpPairKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpPairKey({} <-> {} vlan {})", self.lo(), self.hi(), self.vlan)
    }
}

/// A bidirectional Ethernet address pair key (plus VLAN id, 0 unless configured).
///
/// Invariant: `lo <= hi` lexicographically.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacPairKey {
    /// The canonical first address.
    pub lo: [u8; 6],
    /// The canonical second address.
    pub hi: [u8; 6],
    /// The VLAN id in the key.
    pub vlan: u16,
}

impl MacPairKey {
    /// The key for a frame from `src` to `dst`, and its orientation.
    #[inline]
    pub fn new(src: [u8; 6], dst: [u8; 6], vlan: u16) -> (Self, Orientation) {
        if src <= dst {
            (MacPairKey { lo: src, hi: dst, vlan }, Orientation::Forward)
        } else {
            (MacPairKey { lo: dst, hi: src, vlan }, Orientation::Reverse)
        }
    }
}
