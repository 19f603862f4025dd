//! Zero-copy packet decoding.
//!
//! [`decode`] walks one captured frame from the link layer down to the transport header
//! and returns [`Headers`]: a fixed-size, `Copy` summary holding the fields flow tracking
//! needs (addresses, ports, TCP sequence numbers and flags, lengths) and the *offsets* of
//! the payload inside the original frame. Nothing is copied out of the frame and nothing is
//! allocated; the payload stays where it is and [`Headers::payload`] borrows it.
//!
//! Each header's length is checked once, against a fixed-size array reference, before any
//! field is read, so field reads cannot go out of bounds and the decoder never panics on
//! any input (the fuzz target `extract` and the truncation tests hold it to that).
//!
//! # What is read
//!
//! - Link types: Ethernet (1), raw IP (101, and 228/229 for IPv4/IPv6 only), Linux cooked
//!   capture SLL (113) and SLL2 (276), BSD null (0) and OpenBSD loop (108), Linux NFLOG
//!   (239), PPP (9, 50), IEEE 802.11 data frames (105) and behind radiotap (127).
//! - Below Ethernet: 802.1Q and 802.1ad/QinQ tags (any mix, up to [`MAX_VLAN_TAGS`]; the
//!   first two VLAN ids are kept), Cisco FabricPath and VN-Tag, MPLS label stacks (up to
//!   [`MAX_MPLS_LABELS`]) followed by IPv4 or IPv6, PPPoE sessions carrying IPv4 or IPv6.
//! - IPv4 with options and fragment fields (RFC 791); IPv6 (RFC 8200) with its
//!   extension-header chain: hop-by-hop, routing, fragment, destination options and AH
//!   (RFC 4302), up to [`MAX_IPV6_EXT_HEADERS`].
//! - TCP (RFC 9293; options length checked), UDP (RFC 768), ICMP (RFC 792) and ICMPv6
//!   (RFC 4443) with the embedded header of error messages, SCTP ports (RFC 9260).
//!
//! # Lengths, snaplen and lies
//!
//! Three lengths matter: what was *captured* (`frame.len()`), what was on the *wire*
//! ([`PacketView::orig_len`]), and what the IP header *claims*. When a capture's snaplen
//! cut the frame after the headers, decoding succeeds, the payload range covers only the
//! captured bytes and [`Headers::truncated`] is set: the flow key is still known. When the
//! headers themselves are cut, the result is [`DecodeErrorKind::Truncated`]. When a header
//! claims more bytes than were on the wire (an IPv4 total length larger than the frame,
//! say), that is a content fault with its own [`DecodeErrorKind`]. Ethernet padding beyond
//! the IP length is ignored.
//!
//! # Why not etherparse
//!
//! etherparse is a fine general parser, but flow tracking needs three things it does not
//! give us in one pass: payload ranges as offsets into the *original* frame (so reassembly
//! can hand out slices of it), a lax mode that keeps the key when snaplen cut the payload,
//! and one small `Copy` error naming the layer. Writing the views here also keeps the
//! whole walk in one inlined function, which is what meets the per-packet budget
//! (see `benches/extract.rs`).

#[cfg(feature = "tracker")]
pub(crate) mod checksum;
mod common;
mod error;
mod ip;
mod link;
mod transport;
mod tunnel;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use error::{DecodeError, DecodeErrorKind, Layer};
pub use tunnel::{decode_encapsulated, encapsulated, Encap, TunnelConfig, TunnelKind};

use crate::time::Timestamp;

/// The most 802.1Q/802.1ad tags [`decode`] walks through before giving up.
pub const MAX_VLAN_TAGS: u8 = 8;
/// The most MPLS label stack entries [`decode`] walks through before giving up.
pub const MAX_MPLS_LABELS: u8 = 16;
/// The most IPv6 extension headers [`decode`] walks through before giving up.
pub const MAX_IPV6_EXT_HEADERS: u8 = 16;

/// A link-layer header type, as a LINKTYPE number from the pcap/pcapng registry.
///
/// Any `u32` can be held; [`LinkType::is_supported`] says whether [`decode`] reads it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    pub const NULL: LinkType = LinkType(0);
    /// IEEE 802.3 Ethernet.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP; the version nibble says IPv4 or IPv6.
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4 only.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6 only.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux netfilter NFLOG messages.
    pub const NFLOG: LinkType = LinkType(239);
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: LinkType = LinkType(276);
    /// PPP (RFC 1661), with or without the HDLC address/control bytes.
    pub const PPP: LinkType = LinkType(9);
    /// PPP in HDLC-like framing (RFC 1662).
    pub const PPP_HDLC: LinkType = LinkType(50);
    /// IEEE 802.11 frames.
    pub const IEEE802_11: LinkType = LinkType(105);
    /// IEEE 802.11 frames behind a radiotap header.
    pub const IEEE802_11_RADIOTAP: LinkType = LinkType(127);

    /// True when [`decode`] understands this link type.
    pub const fn is_supported(self) -> bool {
        matches!(self.0, 0 | 1 | 9 | 50 | 101 | 105 | 108 | 113 | 127 | 228 | 229 | 239 | 276)
    }
}

/// One captured frame as handed to the core: bytes, capture time, link type and the
/// length the frame had on the wire.
///
/// Invariant: `orig_len >= frame.len()`; [`PacketView::with_orig_len`] raises a smaller
/// value to `frame.len()`, since a frame cannot have been shorter on the wire than what
/// was captured of it.
#[derive(Copy, Clone, Debug)]
pub struct PacketView<'a> {
    /// Capture timestamp.
    pub ts: Timestamp,
    /// How to read the first byte of `frame`.
    pub link: LinkType,
    /// The captured bytes.
    pub frame: &'a [u8],
    /// The frame's length on the wire (larger than `frame.len()` when snaplen cut it).
    pub orig_len: u32,
}

impl<'a> PacketView<'a> {
    /// A view of a frame captured whole (`orig_len == frame.len()`).
    #[inline]
    pub fn new(ts: Timestamp, link: LinkType, frame: &'a [u8]) -> Self {
        PacketView { ts, link, frame, orig_len: clamp_u32(frame.len()) }
    }

    /// The same view with the wire length set; values below `frame.len()` are raised to it.
    #[inline]
    pub fn with_orig_len(mut self, orig_len: u32) -> Self {
        self.orig_len = orig_len.max(clamp_u32(self.frame.len()));
        self
    }

    /// True when the capture holds fewer bytes than were on the wire.
    #[inline]
    pub fn is_snapped(&self) -> bool {
        (self.frame.len() as u64) < u64::from(self.orig_len)
    }
}

/// Source and destination MAC addresses of an Ethernet frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct MacAddrs {
    /// Source address.
    pub src: [u8; 6],
    /// Destination address.
    pub dst: [u8; 6],
}

/// The 802.1Q/802.1ad tags a frame carried.
///
/// Invariant: `depth` counts every tag walked (at most [`MAX_VLAN_TAGS`]); `ids` holds the
/// first `min(depth, 2)` VLAN ids, outermost first, the rest zero.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VlanTags {
    ids: [u16; 2],
    depth: u8,
}

impl VlanTags {
    /// The outermost VLAN id, if the frame was tagged.
    #[inline]
    pub fn outer(&self) -> Option<u16> {
        (self.depth > 0).then_some(self.ids[0])
    }

    /// The second VLAN id (the C-tag of QinQ), if there was one.
    #[inline]
    pub fn inner(&self) -> Option<u16> {
        (self.depth > 1).then_some(self.ids[1])
    }

    /// How many tags the frame carried.
    #[inline]
    pub fn depth(&self) -> u8 {
        self.depth
    }

    #[inline]
    fn push(&mut self, id: u16) -> Result<(), DecodeError> {
        if self.depth >= MAX_VLAN_TAGS {
            return Err(DecodeError::new(Layer::Vlan, DecodeErrorKind::TooManyVlanTags));
        }
        if let Some(slot) = self.ids.get_mut(usize::from(self.depth)) {
            *slot = id;
        }
        self.depth += 1;
        Ok(())
    }
}

/// IPv4 fragment fields, or the IPv6 fragment header's.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Offset of this fragment's data in the original datagram, in bytes.
    pub offset: u16,
    /// The more-fragments flag.
    pub more: bool,
    /// The datagram identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
}

impl Fragment {
    /// True for the fragment that starts the datagram (offset 0): it carries the
    /// transport header.
    #[inline]
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// The IP header fields flow tracking uses.
///
/// Addresses are kept as two big-endian 64-bit words (IPv4 in the top 32 bits of the
/// first word), read through [`IpHeader::src`] and [`IpHeader::dst`]: `IpAddr` fields
/// cost store-forwarding stalls on every packet, since the key builder reads them back as
/// whole words.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct IpHeader {
    src: [u64; 2],
    dst: [u64; 2],
    /// True for IPv6.
    pub v6: bool,
    /// The transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// The datagram's length as the header states it, in bytes: IPv4 total length, or
    /// 40 + IPv6 payload length (Zeek's `orig_ip_bytes` unit).
    pub ip_len: u32,
    /// Where the IP header starts in the frame.
    pub offset: u32,
    /// Present when this packet is a fragment (MF set or a non-zero offset).
    pub fragment: Option<Fragment>,
}

impl IpHeader {
    /// Source address.
    #[inline]
    pub fn src(&self) -> IpAddr {
        words_to_addr(self.src, self.v6)
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> IpAddr {
        words_to_addr(self.dst, self.v6)
    }

    /// Source address as two big-endian words (IPv4 in the top 32 bits).
    #[inline]
    pub fn src_words(&self) -> [u64; 2] {
        self.src
    }

    /// Destination address as two big-endian words (IPv4 in the top 32 bits).
    #[inline]
    pub fn dst_words(&self) -> [u64; 2] {
        self.dst
    }
}

/// An address from its two big-endian words.
#[inline]
pub(crate) fn words_to_addr(w: [u64; 2], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from((u128::from(w[0]) << 64) | u128::from(w[1])))
    } else {
        IpAddr::V4(Ipv4Addr::from((w[0] >> 32) as u32))
    }
}

/// The two big-endian words of an address (IPv4 in the top 32 bits).
#[cfg(feature = "extractors")]
#[inline]
pub(crate) fn addr_to_words(a: IpAddr) -> ([u64; 2], bool) {
    match a {
        IpAddr::V4(v4) => ([u64::from(u32::from(v4)) << 32, 0], false),
        IpAddr::V6(v6) => {
            let b = u128::from(v6);
            ([(b >> 64) as u64, b as u64], true)
        }
    }
}

/// TCP flags, as the low 9 bits of header bytes 12-13 (NS, CWR, ECE, URG, ACK, PSH, RST,
/// SYN, FIN).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// FIN: no more data from the sender.
    pub const FIN: u16 = 0x001;
    /// SYN: synchronise sequence numbers.
    pub const SYN: u16 = 0x002;
    /// RST: reset the connection.
    pub const RST: u16 = 0x004;
    /// PSH: push.
    pub const PSH: u16 = 0x008;
    /// ACK: the acknowledgment field is significant.
    pub const ACK: u16 = 0x010;
    /// URG: the urgent pointer is significant.
    pub const URG: u16 = 0x020;
    /// ECE: ECN echo.
    pub const ECE: u16 = 0x040;
    /// CWR: congestion window reduced.
    pub const CWR: u16 = 0x080;
    /// NS: ECN nonce (historic).
    pub const NS: u16 = 0x100;

    /// True when every bit of `mask` is set.
    #[inline]
    pub const fn contains(self, mask: u16) -> bool {
        self.0 & mask == mask
    }
    /// SYN set.
    #[inline]
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    /// ACK set.
    #[inline]
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    /// FIN set.
    #[inline]
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    /// RST set.
    #[inline]
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
}

/// The TCP header fields flow tracking and reassembly use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when ACK is set).
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Receive window, unscaled.
    pub window: u16,
    /// Header length including options, in bytes (20..=60).
    pub header_len: u8,
    /// Where the TCP header starts in the frame.
    pub offset: u32,
}

impl TcpHeader {
    /// The option bytes, if they were captured whole.
    pub fn options<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let start = self.offset as usize + 20;
        let end = self.offset as usize + usize::from(self.header_len);
        frame.get(start..end)
    }
}

/// The UDP header fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct UdpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The length field (header plus payload).
    pub length: u16,
}

/// The transport 5-tuple carried inside an ICMP error message: the header of the
/// datagram that caused the error, as that datagram's sender sent it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct InnerTuple {
    /// Source address of the offending datagram.
    pub src: IpAddr,
    /// Destination address of the offending datagram.
    pub dst: IpAddr,
    /// Its transport protocol.
    pub proto: u8,
    /// Its source port (0 when the protocol has none or it was not quoted).
    pub src_port: u16,
    /// Its destination port (0 when the protocol has none or it was not quoted).
    pub dst_port: u16,
    /// The length its IP header claims (the datagram was usually quoted only in part).
    pub ip_len: u32,
}

/// The ICMP or ICMPv6 header fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct IcmpHeader {
    /// True for ICMPv6 (protocol 58), false for ICMP (protocol 1).
    pub v6: bool,
    /// Message type.
    pub ty: u8,
    /// Message code.
    pub code: u8,
    /// The four bytes after the checksum (identifier and sequence for echo).
    pub rest: [u8; 4],
    /// Where the ICMP header starts in the frame.
    pub offset: u32,
    /// Where the ICMP message ends in the captured frame.
    pub end: u32,
}

impl IcmpHeader {
    /// True for error messages (destination unreachable, time exceeded, ...), which quote
    /// the offending datagram.
    pub fn is_error(&self) -> bool {
        if self.v6 {
            self.ty < 128
        } else {
            matches!(self.ty, 3 | 4 | 5 | 11 | 12)
        }
    }

    /// For error messages: the tuple of the datagram the message quotes, read from
    /// `frame` (the frame these headers were decoded from), when enough of it was quoted.
    ///
    /// Computed on demand rather than during [`decode`], since only ICMP errors need it
    /// and it would otherwise widen every decoded packet.
    pub fn inner(&self, frame: &[u8]) -> Option<InnerTuple> {
        if !self.is_error() {
            return None;
        }
        ip::quoted_tuple(frame, self.offset as usize + 8, self.end as usize)
    }
}

/// The transport layer of a decoded packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// ICMP or ICMPv6.
    Icmp(IcmpHeader),
    /// No transport header: a non-IP frame, or an IP fragment other than the first.
    None,
    /// An IP protocol this decoder does not look into (the number is in `IpHeader::proto`).
    Other,
    /// SCTP (only the ports are read).
    Sctp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// TCP.
    Tcp(TcpHeader),
    /// UDP.
    Udp(UdpHeader),
}

/// Everything [`decode`] learned about one frame.
///
/// Invariant: `payload_offset + payload_len <= frame.len()` for the frame it was decoded
/// from, and `payload_len <= payload_wire_len`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Headers {
    /// The frame's link type.
    pub link: LinkType,
    /// True when the frame starts with an Ethernet header ([`Headers::mac`] reads it).
    pub has_mac: bool,
    /// 802.1Q/802.1ad tags.
    pub vlan: VlanTags,
    /// How many MPLS labels were popped.
    pub mpls_depth: u8,
    /// The EtherType (or equivalent) of the network layer; 0 when the link type has none.
    pub ethertype: u16,
    /// The IP header, for IP packets.
    pub ip: Option<IpHeader>,
    /// The transport header.
    pub transport: Transport,
    /// Where the transport payload starts in the frame.
    pub payload_offset: u32,
    /// Payload bytes present in the frame.
    pub payload_len: u32,
    /// Payload bytes the headers say were on the wire.
    pub payload_wire_len: u32,
    /// The frame's length on the wire (`PacketView::orig_len`), Zeek's and tshark's
    /// "frame bytes" unit.
    pub frame_len: u32,
    /// True when snaplen cut the frame inside the IP datagram (payload or TCP options).
    pub truncated: bool,
}

impl Headers {
    /// The Ethernet addresses, read from `frame` (the frame these headers came from),
    /// when the link layer is Ethernet.
    ///
    /// Read on demand: copying them during [`decode`] costs more than everything else
    /// the decoder does for a TCP packet.
    #[inline]
    pub fn mac(&self, frame: &[u8]) -> Option<MacAddrs> {
        if !self.has_mac {
            return None;
        }
        let eth = frame.first_chunk::<12>()?;
        let [d0, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5] = *eth;
        Some(MacAddrs { dst: [d0, d1, d2, d3, d4, d5], src: [s0, s1, s2, s3, s4, s5] })
    }

    /// The captured payload, borrowed from the frame the headers were decoded from.
    ///
    /// Returns an empty slice if `frame` is not that frame and the range does not fit.
    #[inline]
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let start = self.payload_offset as usize;
        frame.get(start..start + self.payload_len as usize).unwrap_or(&[])
    }

    /// The TCP header, for TCP packets.
    #[inline]
    pub fn tcp(&self) -> Option<&TcpHeader> {
        match &self.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }

    /// Source and destination ports (ICMP: none; see the extractors for its mapping).
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.transport {
            Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
            Transport::Udp(u) => Some((u.src_port, u.dst_port)),
            Transport::Sctp { src_port, dst_port } => Some((src_port, dst_port)),
            _ => None,
        }
    }
}

/// Decode one frame.
///
/// Succeeds for every frame whose headers are complete, IP or not: a non-IP frame (ARP,
/// LLDP, ...) yields `ip: None` with its `ethertype`; an IP fragment other than the first
/// yields `Transport::None`. Fails with a [`DecodeError`] naming the layer when a header
/// is cut short or contradicts itself, and for link types [`LinkType::is_supported`]
/// rejects. Never panics, never allocates. A frame longer than 4 GiB (no capture format
/// holds one) is decoded as its first 4 GiB, so every offset fits `u32`.
#[inline(always)]
pub fn decode(view: &PacketView<'_>) -> Result<Headers, DecodeError> {
    match decode_common(view) {
        Some(headers) => Ok(headers),
        None => decode_any(view),
    }
}

/// The first 4 GiB of `view`'s frame, and the frame's length on the wire. Frames are at most
/// 4 GiB (pcap and pcapng lengths are 32-bit): said once, the compiler knows every offset
/// into the frame fits the `u32` fields and drops the clamping of each (8 instructions a
/// packet, callgrind, `track_loop 1 200000`).
#[inline(always)]
fn frame_of<'a>(view: &PacketView<'a>) -> (&'a [u8], u32) {
    let frame = view.frame.get(..u32::MAX as usize).unwrap_or(view.frame);
    (frame, view.orig_len.max(frame.len() as u32))
}

/// [`decode`] for the commonest frames only (Ethernet; IPv4 without options or
/// fragmentation, or IPv6 without extension headers; TCP or UDP; see `common.rs`), `None`
/// for any other; when it is `Some`, [`decode`] gives the same.
#[inline(always)]
pub(crate) fn decode_common(view: &PacketView<'_>) -> Option<Headers> {
    let (frame, frame_len) = frame_of(view);
    common::decode(frame, view.link, frame_len)
}

/// [`decode_common`] for IPv4 only.
#[cfg(feature = "extractors")]
#[inline(always)]
pub(crate) fn decode_common_v4(view: &PacketView<'_>) -> Option<Headers> {
    let (frame, frame_len) = frame_of(view);
    common::ipv4(frame, view.link, frame_len)
}

/// [`decode_common`] for IPv6 only.
#[cfg(feature = "extractors")]
#[inline(always)]
pub(crate) fn decode_common_v6(view: &PacketView<'_>) -> Option<Headers> {
    let (frame, frame_len) = frame_of(view);
    common::ipv6(frame, view.link, frame_len)
}

/// [`decode`] for any frame, layer by layer (the common frames are `decode_common`'s).
#[inline(always)]
pub(crate) fn decode_any(view: &PacketView<'_>) -> Result<Headers, DecodeError> {
    let (frame, frame_len) = frame_of(view);
    let link_type = view.link;
    // Each layer returns its results by value and the struct is assembled once at the end:
    // filling a `Headers` field by field through `&mut` and then moving it cost more (in
    // store-forwarding stalls) than the whole walk (benches/extract.rs: 22 -> 12 ns).
    let mut link = LinkInfo::default();
    // Ethernet carrying IPv4 (here: the datagrams `decode_common` declines, ICMP, with
    // options or fragmented) is recognised here rather than in `decode_link`: its result,
    // merged from a dozen paths, went through memory, and the link type and EtherType
    // through comparison ladders; 23 instructions a packet of 891 (callgrind,
    // `track_loop 1 200000`). The same bytes decide as there.
    let net = match frame.get(12..14) {
        Some(&[0x08, 0x00]) if link_type == LinkType::ETHERNET => {
            link.has_mac = true;
            link.ethertype = link::ETH_IPV4;
            link::Net::Ipv4(14)
        }
        _ => link::decode_link(frame, link_type, &mut link)?,
    };
    let (ip, upper) = match net {
        link::Net::Ipv4(off) => {
            let (ip, upper) = ip::decode_ipv4(frame, off, frame_len)?;
            (Some(ip), upper)
        }
        link::Net::Ipv6(off) => {
            let (ip, upper) = ip::decode_ipv6(frame, off, frame_len)?;
            (Some(ip), upper)
        }
        link::Net::Other => (None, ip::opaque_payload(frame.len(), 0, 0)),
    };
    Ok(Headers {
        link: link_type,
        has_mac: link.has_mac,
        vlan: link.vlan,
        mpls_depth: link.mpls_depth,
        ethertype: link.ethertype,
        ip,
        transport: upper.transport,
        payload_offset: upper.payload_offset,
        payload_len: upper.payload_len,
        payload_wire_len: upper.payload_wire_len,
        frame_len,
        truncated: upper.truncated,
    })
}

/// What the link layer (and the tags and labels under it) said.
#[derive(Copy, Clone, Debug, Default)]
struct LinkInfo {
    has_mac: bool,
    vlan: VlanTags,
    mpls_depth: u8,
    ethertype: u16,
}

/// What the transport layer said: its header and where the payload is.
#[derive(Copy, Clone, Debug)]
struct Upper {
    transport: Transport,
    payload_offset: u32,
    payload_len: u32,
    payload_wire_len: u32,
    truncated: bool,
}

#[inline(always)]
pub(crate) fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A fixed-size view of `N` bytes at `off`, or a truncation error for `layer`.
#[inline(always)]
pub(crate) fn header_at<const N: usize>(
    frame: &[u8],
    off: usize,
    layer: Layer,
) -> Result<&[u8; N], DecodeError> {
    match frame.get(off..).and_then(|b| b.first_chunk::<N>()) {
        Some(h) => Ok(h),
        None => Err(DecodeError::truncated(layer, N, frame.len().saturating_sub(off))),
    }
}

#[inline(always)]
pub(crate) const fn be16(b0: u8, b1: u8) -> u16 {
    u16::from_be_bytes([b0, b1])
}

#[inline(always)]
pub(crate) const fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}

#[cfg(test)]
mod tests;
