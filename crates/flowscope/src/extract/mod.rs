//! Flow extraction: from a frame to a bidirectional flow key.
//!
//! A [`FlowExtractor`] decodes a [`PacketView`] (see [`crate::packet`]) and turns it into an
//! [`Extracted`]: a canonical key that both directions of a conversation share, the
//! packet's [`Orientation`] relative to that key, and the decoded [`Headers`] (L4 info,
//! TCP sequence numbers and flags, payload offsets into the original frame). A packet that
//! cannot be keyed is [`Unmatched`], with the reason, never a panic.
//!
//! Built-in extractors:
//!
//! | extractor | key | what it groups |
//! |---|---|---|
//! | [`FiveTuple`] | [`FiveTupleKey`] | addresses, ports, protocol (and optionally the VLAN id) |
//! | [`IpPair`] | [`IpPairKey`] | the two IP addresses (and optionally the VLAN id) |
//! | [`MacPair`] | [`MacPairKey`] | the two Ethernet addresses (and optionally the VLAN id) |
//!
//! ICMP and ICMPv6 get Zeek's port convention (also the Community ID specification's):
//! the "source port" is the message type and the "destination port" is the type of the
//! matching reply (echo 8 <-> 0, ...), so a request and its reply form one flow; for
//! messages without a counterpart (errors, redirects, ...) it is the code. ICMP errors
//! additionally expose the tuple of the datagram they quote in
//! [`IcmpHeader::inner`](crate::packet::IcmpHeader::inner).
//!
//! IP fragments other than the first carry no transport header; until IP defragmentation
//! exists they are [`Unmatched::Fragment`] (so is a first fragment too short to hold its
//! transport header). First fragments are keyed normally.

mod community_id;
mod key;

use core::fmt;
use core::hash::Hash;

pub use community_id::{community_id_v1, icmp_port_mapping, CommunityId, IcmpPorts};
pub use key::{FiveTupleKey, IpPairKey, MacPairKey};

use crate::packet::{
    self, DecodeError, DecodeErrorKind, Headers, PacketView, TcpHeader, Transport,
};

/// Turns frames into flow keys.
///
/// Implementations must be deterministic (the same frame always gives the same result),
/// must give both directions of a conversation the same key with opposite
/// [`Orientation`]s, and must never panic or allocate.
pub trait FlowExtractor {
    /// The flow key. Small, `Copy`, hashable.
    type Key: Copy + Eq + Hash + fmt::Debug;

    /// Decode and key one packet.
    fn extract(&self, packet: &PacketView<'_>) -> Result<Extracted<Self::Key>, Unmatched> {
        self.extract_headers(packet.frame, packet::decode(packet)?)
    }

    /// Key headers decoded already from `frame`: a tunnelled packet's, from
    /// [`decode_encapsulated`](crate::packet::decode_encapsulated), or the frame's own
    /// (which is what [`extract`](Self::extract) does).
    fn extract_headers(
        &self,
        frame: &[u8],
        headers: Headers,
    ) -> Result<Extracted<Self::Key>, Unmatched>;
}

/// Which way a packet went relative to its key's canonical order.
///
/// Complete by definition, so not `#[non_exhaustive]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Orientation {
    /// From the key's first (lower) endpoint to its second.
    Forward,
    /// From the key's second endpoint to its first.
    Reverse,
}

impl Orientation {
    /// The other direction.
    #[inline]
    pub const fn flip(self) -> Orientation {
        match self {
            Orientation::Forward => Orientation::Reverse,
            Orientation::Reverse => Orientation::Forward,
        }
    }
}

/// The transport protocol class of a flow.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum L4Proto {
    /// ICMP or ICMPv6.
    Icmp,
    /// Any other IP protocol (SCTP, GRE, ESP, ...) or a non-IP pair.
    Other,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl L4Proto {
    /// Zeek's `proto` field value: `tcp`, `udp`, `icmp`, or `unknown_transport`.
    pub const fn as_str(self) -> &'static str {
        match self {
            L4Proto::Icmp => "icmp",
            L4Proto::Other => "unknown_transport",
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

/// A keyed packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Extracted<K> {
    /// The flow key, the same for both directions.
    pub key: K,
    /// This packet's direction relative to the key.
    pub orientation: Orientation,
    /// Everything the decoder read, including payload offsets into the frame.
    pub headers: Headers,
}

impl<K> Extracted<K> {
    /// The transport protocol class.
    #[inline]
    pub fn l4(&self) -> L4Proto {
        match self.headers.transport {
            Transport::Tcp(_) => L4Proto::Tcp,
            Transport::Udp(_) => L4Proto::Udp,
            Transport::Icmp(_) => L4Proto::Icmp,
            _ => L4Proto::Other,
        }
    }

    /// The TCP header, for TCP packets.
    #[inline]
    pub fn tcp(&self) -> Option<&TcpHeader> {
        self.headers.tcp()
    }
}

/// Why a packet was not keyed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unmatched {
    /// An IP fragment without a complete transport header (any fragment but the first,
    /// or a first fragment too short to hold the header): only defragmentation can key it.
    Fragment,
    /// A header was cut short or contradicted itself.
    Malformed(DecodeError),
    /// The extractor needs link-layer addresses and this link type has none.
    NoMacAddress,
    /// Not an IP packet (ARP, LLDP, ...): the EtherType, 0 if the link layer has none.
    NotIp {
        /// The EtherType found.
        ethertype: u16,
    },
    /// A link type the decoder does not read (LINKTYPE number).
    UnsupportedLinkType(u32),
}

impl Unmatched {
    /// A short label for counters: `fragment`, `malformed`, `no_mac_address`, `not_ip`,
    /// `unsupported_link_type`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Unmatched::Malformed(_) => "malformed",
            Unmatched::NoMacAddress => "no_mac_address",
            Unmatched::Fragment => "fragment",
            Unmatched::NotIp { .. } => "not_ip",
            Unmatched::UnsupportedLinkType(_) => "unsupported_link_type",
        }
    }
}

impl From<DecodeError> for Unmatched {
    #[inline]
    fn from(e: DecodeError) -> Self {
        match e.kind {
            DecodeErrorKind::UnsupportedLinkType(lt) => Unmatched::UnsupportedLinkType(lt),
            _ => Unmatched::Malformed(e),
        }
    }
}

impl fmt::Display for Unmatched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmatched::Malformed(e) => write!(f, "malformed: {e}"),
            Unmatched::NoMacAddress => f.write_str("no link-layer addresses"),
            Unmatched::Fragment => f.write_str("IP fragment without a transport header"),
            Unmatched::NotIp { ethertype } => write!(f, "not IP (ethertype {ethertype:#06x})"),
            Unmatched::UnsupportedLinkType(lt) => write!(f, "unsupported link type {lt}"),
        }
    }
}

/// Key by addresses, ports and protocol: the classic bidirectional 5-tuple.
///
/// Ports are the TCP/UDP/SCTP ports, ICMP's type/counterpart mapping (see the module
/// docs), or 0 for other protocols. With `vlan_in_key`, the outermost VLAN id joins the
/// key, so the same 5-tuple on two VLANs is two flows.
#[derive(Copy, Clone, Debug, Default)]
pub struct FiveTuple {
    /// Include the outer VLAN id in the key (default false).
    pub vlan_in_key: bool,
}

impl FiveTuple {
    /// The default: VLAN ids are not part of the key.
    pub const fn new() -> Self {
        FiveTuple { vlan_in_key: false }
    }

    /// Include (or not) the outer VLAN id in the key.
    pub const fn with_vlan_in_key(mut self, yes: bool) -> Self {
        self.vlan_in_key = yes;
        self
    }
}

impl FiveTuple {
    /// `extract` for any frame but the common IPv4 one. Taken apart from it: with the
    /// IPv6 case decoded beside the IPv4 one and the two results merged before keying,
    /// the IPv4 frame cost 43 instructions more (callgrind, `track_loop 1 200000`); so it
    /// costs 8. Inline all the same: out of line, its result came back through memory,
    /// so the IPv4 case had to write its whole result there too, which cost a caller
    /// that reads two fields of it 3-4 ns a packet (benches/extract.rs).
    #[inline(always)]
    fn extract_other(&self, packet: &PacketView<'_>) -> Result<Extracted<FiveTupleKey>, Unmatched> {
        let headers = match packet::decode_common_v6(packet) {
            Some(headers) => headers,
            None => packet::decode_any(packet)?,
        };
        let (key, orientation) = self.key_of(&headers)?;
        Ok(Extracted { key, orientation, headers })
    }

    /// The key of IP headers, and the packet's orientation.
    #[inline(always)]
    fn key_of(&self, headers: &Headers) -> Result<(FiveTupleKey, Orientation), Unmatched> {
        let ip = match headers.ip {
            None => return Err(Unmatched::NotIp { ethertype: headers.ethertype }),
            Some(ip) if ip.fragment.is_some() && matches!(headers.transport, Transport::None) => {
                return Err(Unmatched::Fragment)
            }
            Some(ip) => ip,
        };
        let (sport, dport) = match headers.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp(u) => (u.src_port, u.dst_port),
            Transport::Sctp { src_port, dst_port } => (src_port, dst_port),
            Transport::Icmp(i) => {
                let m = icmp_port_mapping(i.v6, i.ty, i.code);
                (m.src_port, m.dst_port)
            }
            _ => (0, 0),
        };
        let vlan = if self.vlan_in_key { headers.vlan.outer().unwrap_or(0) } else { 0 };
        Ok(FiveTupleKey::from_words(
            ip.src_words(),
            sport,
            ip.dst_words(),
            dport,
            ip.proto,
            ip.v6,
            vlan,
        ))
    }
}

impl FlowExtractor for FiveTuple {
    type Key = FiveTupleKey;

    // Written out rather than through `extract_headers`: handing the decoded `Headers`
    // on by value cost the tracker 10-15% on 10k flows (benches/tracker.rs), the
    // copies of a ~170-byte value stalling on store forwarding. Forced inline: left to
    // the compiler it stayed a call, and the tracker's and driver's frame path paid for
    // building the whole result in memory (callgrind: `track_loop 1000` 589 -> 574
    // instructions a packet, batched 607 -> 588, `drive_loop` 14,065 -> 14,043; the CLI
    // on the merged capture -0.7%).
    #[inline(always)]
    fn extract(&self, packet: &PacketView<'_>) -> Result<Extracted<FiveTupleKey>, Unmatched> {
        match packet::decode_common_v4(packet) {
            Some(headers) => {
                let (key, orientation) = self.key_of(&headers)?;
                Ok(Extracted { key, orientation, headers })
            }
            None => self.extract_other(packet),
        }
    }

    #[inline]
    fn extract_headers(
        &self,
        _frame: &[u8],
        headers: Headers,
    ) -> Result<Extracted<FiveTupleKey>, Unmatched> {
        let (key, orientation) = self.key_of(&headers)?;
        Ok(Extracted { key, orientation, headers })
    }
}

/// Key by the two IP addresses only (all protocols between two hosts form one flow).
#[derive(Copy, Clone, Debug, Default)]
pub struct IpPair {
    /// Include the outer VLAN id in the key (default false).
    pub vlan_in_key: bool,
}

impl FlowExtractor for IpPair {
    type Key = IpPairKey;

    #[inline]
    fn extract_headers(
        &self,
        _frame: &[u8],
        headers: Headers,
    ) -> Result<Extracted<IpPairKey>, Unmatched> {
        // Fragments all belong to the same address pair, so none is unmatched here.
        let Some(ip) = headers.ip else {
            return Err(Unmatched::NotIp { ethertype: headers.ethertype });
        };
        let vlan = if self.vlan_in_key { headers.vlan.outer().unwrap_or(0) } else { 0 };
        let (key, orientation) = IpPairKey::new(ip.src(), ip.dst(), vlan);
        Ok(Extracted { key, orientation, headers })
    }
}

/// Key by the two Ethernet addresses (any EtherType; IP not required).
#[derive(Copy, Clone, Debug, Default)]
pub struct MacPair {
    /// Include the outer VLAN id in the key (default false).
    pub vlan_in_key: bool,
}

impl FlowExtractor for MacPair {
    type Key = MacPairKey;

    #[inline]
    fn extract_headers(
        &self,
        frame: &[u8],
        headers: Headers,
    ) -> Result<Extracted<MacPairKey>, Unmatched> {
        let Some(mac) = headers.mac(frame) else {
            return Err(Unmatched::NoMacAddress);
        };
        let vlan = if self.vlan_in_key { headers.vlan.outer().unwrap_or(0) } else { 0 };
        let (key, orientation) = MacPairKey::new(mac.src, mac.dst, vlan);
        Ok(Extracted { key, orientation, headers })
    }
}

#[cfg(test)]
mod tests;
