//! Community ID v1 flow hashing.
//!
//! The Community ID specification (corelight/community-id-spec) defines a flow id that
//! Zeek, Suricata, Wireshark and others compute alike, so records from different tools can
//! be joined on it:
//!
//! ```text
//! sha1( seed:u16be . addr_a . addr_b . proto:u8 . 0:u8 [. port_a:u16be . port_b:u16be] )
//! ```
//!
//! rendered as `"1:" + base64(digest)`. The endpoints are ordered so the smaller
//! (address, port) comes first, which makes the id direction-free. Ports are present for
//! TCP, UDP, SCTP, ICMP and ICMPv6 and absent for other protocols. ICMP uses Zeek's
//! type/counterpart mapping ([`icmp_port_mapping`]); one-way ICMP messages are hashed in
//! the order they were sent, not reordered.

use core::fmt;
use core::net::IpAddr;
use std::string::String;

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// A Community ID v1 value: the 20-byte SHA-1 digest.
///
/// `Display` renders the standard form `1:<base64>`; [`CommunityId::to_hex`] the
/// specification's unencoded variant.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct CommunityId(pub [u8; 20]);

impl CommunityId {
    /// `1:` followed by the digest in lowercase hex (the reference tool's `--no-base64`).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(42);
        s.push_str("1:");
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }

    /// The standard form `1:<base64>` as its 30 ASCII bytes, for writers that skip
    /// `core::fmt` (the same text as `Display`).
    pub fn to_ascii(&self) -> [u8; 30] {
        let mut out = [0u8; 30];
        out[0] = b'1';
        out[1] = b':';
        // 20 bytes encode to exactly 28 base64 characters (padding included), so the
        // slice always has room and the result is always complete.
        let _ = base64::engine::general_purpose::STANDARD.encode_slice(self.0, &mut out[2..]);
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ascii = self.to_ascii();
        f.write_str(core::str::from_utf8(&ascii).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommunityId({self})")
    }
}

/// An ICMP message mapped to ports, as Zeek and the Community ID specification do.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct IcmpPorts {
    /// The message type.
    pub src_port: u16,
    /// The counterpart type for request/response pairs, else the code.
    pub dst_port: u16,
    /// True when the type has no counterpart.
    pub one_way: bool,
}

/// The counterpart of an ICMP (`v6 == false`) or ICMPv6 message type, if it has one.
fn counterpart(v6: bool, ty: u8) -> Option<u8> {
    let c = if v6 {
        match ty {
            128 => 129, // echo request / reply
            129 => 128,
            130 => 131, // multicast listener query / report
            131 => 130,
            133 => 134, // router solicitation / advertisement
            134 => 133,
            135 => 136, // neighbor solicitation / advertisement
            136 => 135,
            139 => 140, // node information query / response
            140 => 139,
            144 => 145, // home agent address discovery request / reply
            145 => 144,
            _ => return None,
        }
    } else {
        match ty {
            8 => 0, // echo / echo reply
            0 => 8,
            13 => 14, // timestamp / reply
            14 => 13,
            15 => 16, // information request / reply
            16 => 15,
            10 => 9, // router solicitation / advertisement
            9 => 10,
            17 => 18, // address mask request / reply
            18 => 17,
            _ => return None,
        }
    };
    Some(c)
}

/// True when an ICMP/ICMPv6 type has no request/response counterpart.
#[inline]
pub(crate) fn icmp_is_one_way(v6: bool, ty: u8) -> bool {
    counterpart(v6, ty).is_none()
}

/// Map an ICMP or ICMPv6 type and code to ports (Zeek's convention).
#[inline]
pub fn icmp_port_mapping(v6: bool, ty: u8, code: u8) -> IcmpPorts {
    match counterpart(v6, ty) {
        Some(c) => IcmpPorts { src_port: u16::from(ty), dst_port: u16::from(c), one_way: false },
        None => IcmpPorts { src_port: u16::from(ty), dst_port: u16::from(code), one_way: true },
    }
}

/// Compute a Community ID v1 from a directed tuple.
///
/// `ports` is `None` for protocols without ports. With `one_way`, the endpoints are
/// hashed in the order given; otherwise the smaller (address, port) goes first. Mixed
/// address families are hashed as given (the specification does not define them).
pub fn community_id_v1(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Option<(u16, u16)>,
    one_way: bool,
) -> CommunityId {
    let (sport, dport) = ports.unwrap_or((0, 0));
    let ordered = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.octets(), sport) <= (b.octets(), dport),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.octets(), sport) <= (b.octets(), dport),
        _ => true,
    };
    let (a, b, pa, pb) =
        if one_way || ordered { (src, dst, sport, dport) } else { (dst, src, dport, sport) };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    for addr in [a, b] {
        match addr {
            IpAddr::V4(v4) => h.update(v4.octets()),
            IpAddr::V6(v6) => h.update(v6.octets()),
        }
    }
    h.update([proto, 0]);
    if ports.is_some() {
        h.update(pa.to_be_bytes());
        h.update(pb.to_be_bytes());
    }
    CommunityId(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_readme_example_orders_endpoints() {
        // The specification's example: both directions order to 10.0.0.1, 127.0.0.1, 1234, 80.
        let a = community_id_v1(
            0,
            "10.0.0.1".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            6,
            Some((1234, 80)),
            false,
        );
        let b = community_id_v1(
            0,
            "127.0.0.1".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            6,
            Some((80, 1234)),
            false,
        );
        assert_eq!(a, b);
        assert_eq!(a.to_string().len(), 30);
        assert!(a.to_string().starts_with("1:"));
        assert_eq!(a.to_hex().len(), 42);
    }

    #[test]
    fn icmp_mapping_pairs_requests_with_replies() {
        assert_eq!(
            icmp_port_mapping(false, 8, 0),
            IcmpPorts { src_port: 8, dst_port: 0, one_way: false }
        );
        assert_eq!(
            icmp_port_mapping(false, 0, 0),
            IcmpPorts { src_port: 0, dst_port: 8, one_way: false }
        );
        assert_eq!(
            icmp_port_mapping(false, 3, 1),
            IcmpPorts { src_port: 3, dst_port: 1, one_way: true }
        );
        assert_eq!(
            icmp_port_mapping(true, 135, 0),
            IcmpPorts { src_port: 135, dst_port: 136, one_way: false }
        );
        assert_eq!(
            icmp_port_mapping(true, 1, 4),
            IcmpPorts { src_port: 1, dst_port: 4, one_way: true }
        );
    }

    #[test]
    fn seed_changes_the_id() {
        let s: IpAddr = "192.168.1.52".parse().unwrap();
        let d: IpAddr = "8.8.8.8".parse().unwrap();
        let a = community_id_v1(0, s, d, 17, Some((54585, 53)), false);
        let b = community_id_v1(1, s, d, 17, Some((54585, 53)), false);
        assert_ne!(a, b);
    }
}
