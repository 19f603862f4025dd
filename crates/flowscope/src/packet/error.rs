//! Typed, allocation-free decode errors.

use core::fmt;

/// The protocol layer at which decoding stopped.
///
/// Variants are alphabetical.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// ICMP or ICMPv6.
    Icmp,
    /// IPv4 header.
    Ipv4,
    /// IPv6 fixed header.
    Ipv6,
    /// An IPv6 extension header (hop-by-hop, routing, fragment, destination options, AH).
    Ipv6Ext,
    /// The link-layer header (Ethernet, SLL, SLL2, null/loopback, NFLOG, raw).
    Link,
    /// An MPLS label stack entry.
    Mpls,
    /// A PPPoE session header.
    Pppoe,
    /// SCTP common header.
    Sctp,
    /// TCP header.
    Tcp,
    /// A tunnel header (GRE, ERSPAN, VXLAN, Geneve, GTP-U, Teredo, AYIYA, IP in IP).
    Tunnel,
    /// UDP header.
    Udp,
    /// An 802.1Q / 802.1ad tag.
    Vlan,
}

impl Layer {
    /// A short lowercase name, stable for use as a counter label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Layer::Icmp => "icmp",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Ipv6Ext => "ipv6_ext",
            Layer::Link => "link",
            Layer::Mpls => "mpls",
            Layer::Pppoe => "pppoe",
            Layer::Sctp => "sctp",
            Layer::Tcp => "tcp",
            Layer::Tunnel => "tunnel",
            Layer::Udp => "udp",
            Layer::Vlan => "vlan",
        }
    }
}

/// What was wrong at a [`Layer`].
///
/// `Truncated` means the bytes ran out (snaplen or a short buffer); every other kind is a
/// content fault: the header contradicts itself or the frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The header needs `need` bytes from its start but only `have` were captured.
    Truncated {
        /// Bytes the header needs.
        need: u32,
        /// Bytes available.
        have: u32,
    },
    /// The IP version nibble does not match the layer (value found).
    BadVersion(u8),
    /// IPv4 IHL below 5 (value found, in 32-bit words).
    BadIhl(u8),
    /// IPv4 total length below the header length, or above what was on the wire.
    BadTotalLength(u16),
    /// IPv6 payload length above what was on the wire.
    BadPayloadLength(u16),
    /// TCP data offset below 5 or beyond the segment (value found, in 32-bit words).
    BadDataOffset(u8),
    /// UDP length below 8 or above the IP payload (value found).
    BadLength(u16),
    /// More stacked 802.1Q/802.1ad tags than [`MAX_VLAN_TAGS`](super::MAX_VLAN_TAGS).
    TooManyVlanTags,
    /// More MPLS labels than [`MAX_MPLS_LABELS`](super::MAX_MPLS_LABELS) without a
    /// bottom-of-stack bit.
    TooManyMplsLabels,
    /// More IPv6 extension headers than
    /// [`MAX_IPV6_EXT_HEADERS`](super::MAX_IPV6_EXT_HEADERS).
    TooManyExtHeaders,
    /// The link type is not one this decoder reads (LINKTYPE number).
    UnsupportedLinkType(u32),
    /// A tunnel names a payload protocol it cannot carry or this decoder does not read
    /// (the protocol type found).
    UnknownProtocol(u16),
}

/// A decode failure: the layer and what was wrong there.
///
/// `Copy`, at most 16 bytes, no allocation, no borrowed data.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    /// Where decoding stopped.
    pub layer: Layer,
    /// Why.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    #[inline]
    pub(crate) const fn new(layer: Layer, kind: DecodeErrorKind) -> Self {
        DecodeError { layer, kind }
    }

    #[inline]
    pub(crate) fn truncated(layer: Layer, need: usize, have: usize) -> Self {
        DecodeError {
            layer,
            kind: DecodeErrorKind::Truncated {
                need: u32::try_from(need).unwrap_or(u32::MAX),
                have: u32::try_from(have).unwrap_or(u32::MAX),
            },
        }
    }

    /// True when the bytes ran out rather than the header being wrong.
    #[inline]
    pub const fn is_truncated(&self) -> bool {
        matches!(self.kind, DecodeErrorKind::Truncated { .. })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = self.layer.as_str();
        match self.kind {
            DecodeErrorKind::Truncated { need, have } => {
                write!(f, "{layer}: truncated (need {need} bytes, have {have})")
            }
            DecodeErrorKind::BadVersion(v) => write!(f, "{layer}: bad version {v}"),
            DecodeErrorKind::BadIhl(v) => write!(f, "{layer}: bad header length {v}"),
            DecodeErrorKind::BadTotalLength(v) => write!(f, "{layer}: bad total length {v}"),
            DecodeErrorKind::BadPayloadLength(v) => write!(f, "{layer}: bad payload length {v}"),
            DecodeErrorKind::BadDataOffset(v) => write!(f, "{layer}: bad data offset {v}"),
            DecodeErrorKind::BadLength(v) => write!(f, "{layer}: bad length {v}"),
            DecodeErrorKind::TooManyVlanTags => write!(f, "{layer}: too many stacked tags"),
            DecodeErrorKind::TooManyMplsLabels => write!(f, "{layer}: label stack too deep"),
            DecodeErrorKind::TooManyExtHeaders => {
                write!(f, "{layer}: too many extension headers")
            }
            DecodeErrorKind::UnknownProtocol(p) => {
                write!(f, "{layer}: unknown payload protocol {p:#06x}")
            }
            DecodeErrorKind::UnsupportedLinkType(lt) => {
                write!(f, "{layer}: unsupported link type {lt}")
            }
        }
    }
}

impl core::error::Error for DecodeError {}
