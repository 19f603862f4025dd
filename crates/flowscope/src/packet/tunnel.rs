//! Tunnels: finding the packet an outer packet carries, without copying it.
//!
//! [`encapsulated`] looks at a decoded outer packet ([`Headers`]) and says whether its
//! payload is a tunnelled packet, and where that packet starts in the *same* frame;
//! [`decode_encapsulated`] decodes it. Offsets in the inner [`Headers`] are offsets into
//! the original frame, so a reassembler hands out slices of the frame exactly as it does
//! for plain traffic.
//!
//! Recognised (by IP protocol number, GRE protocol type, or UDP port):
//!
//! | tunnel | how it is found | inner |
//! |---|---|---|
//! | IP in IP (RFC 2003, 4213, 2473) | IP protocol 4 or 41 | IPv4 / IPv6 |
//! | GRE v0 (RFC 2784, 2890) | IP protocol 47, version 0; C/K/S fields skipped | IPv4, IPv6, Ethernet (0x6558), MPLS |
//! | ERSPAN type I / II / III | GRE 0x88be (I without S bit, II with), 0x22eb (III) | Ethernet |
//! | Enhanced GRE / PPTP (RFC 2637) | IP protocol 47, version 1 (or 0), protocol 0x880b | PPP: IPv4 / IPv6 |
//! | Aruba AP tunnels | GRE 0x8200, 0x8210 | IEEE 802.11 data frames |
//! | VXLAN (RFC 7348) | UDP port 4789 (either side; configurable) | Ethernet |
//! | Geneve (RFC 8926) | UDP port 6081; options skipped | Ethernet, IPv4, IPv6 |
//! | GTP-U v1 (3GPP TS 29.281) | UDP port 2152, message type 255 (G-PDU); extension headers walked | IPv4 / IPv6 |
//! | Teredo (RFC 4380) | UDP port 3544; origin-indication and authentication headers skipped | IPv6 |
//! | AYIYA | UDP port 5072, opcode forward | IPv4 / IPv6 |
//!
//! A header that is cut short or whose lengths do not fit is a [`DecodeError`] at layer
//! [`Layer::Tunnel`]; a payload that merely does not look like the tunnel (a UDP datagram
//! to port 4789 without VXLAN's I flag, a GTP message that is not user data, Teredo
//! whose payload is not IPv6) is not a tunnel at all, and the outer packet stays an
//! ordinary packet. Nesting is bounded by the caller ([`TunnelConfig::max_depth`]).

use super::{
    be16, clamp_u32, header_at, ip, link, DecodeError, DecodeErrorKind, Headers, Layer, LinkInfo,
    PacketView, Transport,
};

/// The encapsulations [`encapsulated`] recognises.
///
/// Variants are alphabetical.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TunnelKind {
    /// AYIYA ("anything in anything"), UDP.
    Ayiya,
    /// ERSPAN (type I, II or III) over GRE: mirrored Ethernet frames.
    Erspan,
    /// Geneve, UDP.
    Geneve,
    /// GRE (version 0), and PPTP's enhanced GRE (version 1).
    Gre,
    /// GTP-U, the user plane of mobile networks, UDP.
    GtpU,
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (4in4, 6in4, 4in6, 6in6).
    IpInIp,
    /// Teredo (IPv6 over UDP/IPv4).
    Teredo,
    /// VXLAN, UDP.
    Vxlan,
}

impl TunnelKind {
    /// A short lowercase name, stable for use as a counter label.
    pub const fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Ayiya => "ayiya",
            TunnelKind::Erspan => "erspan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gre => "gre",
            TunnelKind::GtpU => "gtp_u",
            TunnelKind::IpInIp => "ip_in_ip",
            TunnelKind::Teredo => "teredo",
            TunnelKind::Vxlan => "vxlan",
        }
    }

    /// Every kind, in declaration order (the order of [`TunnelKind::index`]).
    pub const ALL: [TunnelKind; 8] = [
        TunnelKind::Ayiya,
        TunnelKind::Erspan,
        TunnelKind::Geneve,
        TunnelKind::Gre,
        TunnelKind::GtpU,
        TunnelKind::IpInIp,
        TunnelKind::Teredo,
        TunnelKind::Vxlan,
    ];

    /// The kind's position in [`TunnelKind::ALL`], for per-kind counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Which tunnels to look into.
///
/// The defaults are the IANA-assigned ports and every kind enabled, nested up to 4 deep,
/// as Zeek does. `#[non_exhaustive]`: build it with `TunnelConfig::default()` and the
/// `with_*` methods.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TunnelConfig {
    /// How many tunnels deep to follow (0 turns decapsulation off). Default 4.
    pub max_depth: u8,
    /// UDP ports that carry VXLAN. Default `[4789, 0, 0, 0]` (0 = unused slot).
    pub vxlan_ports: [u16; 4],
    /// UDP port that carries Geneve (0 = off). Default 6081.
    pub geneve_port: u16,
    /// UDP port that carries GTP-U (0 = off). Default 2152.
    pub gtp_u_port: u16,
    /// UDP port that carries Teredo (0 = off). Default 3544.
    pub teredo_port: u16,
    /// UDP port that carries AYIYA (0 = off). Default 5072.
    pub ayiya_port: u16,
    /// Also take UDP on any other port for Teredo when its payload is an IPv6 header
    /// with a Teredo address (2001:0::/32) on either side whose length fits the
    /// datagram. Teredo clients talk to each other on arbitrary ports once the server
    /// has introduced them; Zeek follows them too. Default true.
    pub teredo_any_port: bool,
    /// Look into GRE (and ERSPAN, PPTP). Default true.
    pub gre: bool,
    /// Look into IP-in-IP (protocols 4 and 41). Default true.
    pub ip_in_ip: bool,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            max_depth: 4,
            vxlan_ports: [4789, 0, 0, 0],
            geneve_port: 6081,
            gtp_u_port: 2152,
            teredo_port: 3544,
            ayiya_port: 5072,
            teredo_any_port: true,
            gre: true,
            ip_in_ip: true,
        }
    }
}

impl TunnelConfig {
    /// No decapsulation at all: every packet is tracked by its outermost headers.
    pub fn disabled() -> Self {
        TunnelConfig { max_depth: 0, ..TunnelConfig::default() }
    }

    /// Follow at most `depth` nested tunnels.
    pub fn with_max_depth(mut self, depth: u8) -> Self {
        self.max_depth = depth;
        self
    }

    /// The UDP ports that carry VXLAN (up to four; more are ignored).
    pub fn with_vxlan_ports(mut self, ports: &[u16]) -> Self {
        self.vxlan_ports = [0; 4];
        for (slot, p) in self.vxlan_ports.iter_mut().zip(ports) {
            *slot = *p;
        }
        self
    }

    /// True when decapsulation is on.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.max_depth > 0
    }

    #[inline]
    fn udp_kind(&self, src: u16, dst: u16) -> Option<TunnelKind> {
        let is = |p: u16| p != 0 && (p == src || p == dst);
        if self.vxlan_ports.iter().any(|&p| is(p)) {
            Some(TunnelKind::Vxlan)
        } else if is(self.geneve_port) {
            Some(TunnelKind::Geneve)
        } else if is(self.gtp_u_port) {
            Some(TunnelKind::GtpU)
        } else if is(self.teredo_port) {
            Some(TunnelKind::Teredo)
        } else if is(self.ayiya_port) {
            Some(TunnelKind::Ayiya)
        } else {
            None
        }
    }
}

/// A tunnelled packet inside an outer one: what carried it and where it starts.
///
/// Invariant: `start <= end <= frame.len()` for the frame it was found in; the inner
/// packet lies wholly in `start..end` (the outer payload as captured).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Encap {
    /// The tunnel.
    pub kind: TunnelKind,
    inner: Inner,
    start: u32,
    end: u32,
    wire_end: u32,
}

impl Encap {
    /// Where the inner packet starts in the frame.
    pub fn offset(&self) -> u32 {
        self.start
    }
}

/// What the inner packet starts with.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Inner {
    Ethernet,
    /// IPv4 or IPv6, by the version nibble.
    Ip,
    /// An MPLS label stack, then IP.
    Mpls,
    /// A PPP protocol field (PPTP), then IP.
    Ppp,
    /// An IEEE 802.11 frame (Aruba's access-point tunnels).
    Ieee80211,
}

const PROTO_IPIP: u8 = 4;
const PROTO_IPV6: u8 = 41;
const PROTO_GRE: u8 = 47;

// GRE's protocol type is an EtherType.
const GRE_IPV4: u16 = link::ETH_IPV4;
const GRE_IPV6: u16 = link::ETH_IPV6;
const GRE_TEB: u16 = 0x6558;
const GRE_ERSPAN_1_2: u16 = 0x88be;
const GRE_ERSPAN_3: u16 = 0x22eb;
const GRE_MPLS: u16 = link::ETH_MPLS_UC;
const GRE_PPP: u16 = 0x880b;
/// Aruba access points tunnel 802.11 frames to their controller over GRE with these
/// protocol types (data, and data with a different header layout on newer firmware).
const GRE_ARUBA: [u16; 2] = [0x8200, 0x8210];

fn bad(len: usize) -> DecodeError {
    DecodeError::new(
        Layer::Tunnel,
        DecodeErrorKind::BadLength(u16::try_from(len).unwrap_or(u16::MAX)),
    )
}

/// Whether `outer` (decoded from `frame`) carries a tunnelled packet.
///
/// `None`: not a tunnel (the common case, decided from the IP protocol and the ports
/// before any payload byte is read). `Some(Err(_))`: a tunnel header that is cut short or
/// contradicts itself. Never panics, never allocates.
#[inline]
pub fn encapsulated(
    frame: &[u8],
    outer: &Headers,
    config: &TunnelConfig,
) -> Option<Result<Encap, DecodeError>> {
    let ip = outer.ip?;
    if ip.fragment.is_some() {
        // A fragment's payload is only part of the tunnelled packet.
        return None;
    }
    let kind = match outer.transport {
        Transport::Other | Transport::None
            if config.ip_in_ip && matches!(ip.proto, PROTO_IPIP | PROTO_IPV6) =>
        {
            TunnelKind::IpInIp
        }
        Transport::Other | Transport::None if config.gre && ip.proto == PROTO_GRE => {
            TunnelKind::Gre
        }
        Transport::Udp(u) => match config.udp_kind(u.src_port, u.dst_port) {
            Some(kind) => kind,
            None if config.teredo_any_port && looks_like_teredo(frame, outer) => TunnelKind::Teredo,
            None => return None,
        },
        _ => return None,
    };
    let start = outer.payload_offset as usize;
    let end = start + outer.payload_len as usize;
    let wire_end = start + outer.payload_wire_len as usize;
    let p = frame.get(start..end)?;
    // Each arm yields plain locals (or returns): assembling a `Result` of a tuple and
    // unpacking it afterwards went through the stack in pieces and stalled on the
    // store-forwarding of its reload (benches/tunnels.rs: a third of `encapsulated`).
    let found = match kind {
        TunnelKind::IpInIp => {
            let v = p.first()? >> 4;
            let want = if ip.proto == PROTO_IPIP { 4 } else { 6 };
            if v != want {
                return Some(Err(DecodeError::new(Layer::Tunnel, DecodeErrorKind::BadVersion(v))));
            }
            Ok((TunnelKind::IpInIp, Inner::Ip, 0))
        }
        TunnelKind::Gre => gre(p),
        TunnelKind::Vxlan => vxlan(p)?,
        TunnelKind::Geneve => geneve(p)?,
        TunnelKind::GtpU => gtp_u(p)?,
        TunnelKind::Teredo => teredo(p)?,
        TunnelKind::Ayiya => ayiya(p)?,
        TunnelKind::Erspan => return None,
    };
    let (kind, inner, skip) = match found {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    if skip > p.len() {
        return Some(Err(DecodeError::truncated(Layer::Tunnel, skip, p.len())));
    }
    Some(Ok(Encap {
        kind,
        inner,
        start: clamp_u32(start + skip),
        end: clamp_u32(end),
        wire_end: clamp_u32(wire_end),
    }))
}

/// Decode the packet `encap` found inside `view`'s frame.
///
/// The result reads like any decoded frame, with offsets into `view.frame`; its
/// `frame_len` is the whole frame's (what the tunnelled packet cost on the wire), its
/// VLAN tags are the inner Ethernet header's when it has tagged ones and the outer
/// frame's otherwise, and `has_mac` is false (the outer frame's MAC addresses are not
/// the inner packet's).
#[inline]
pub fn decode_encapsulated(
    view: &PacketView<'_>,
    outer: &Headers,
    encap: &Encap,
) -> Result<Headers, DecodeError> {
    // Reads are confined to the outer payload, so nothing after it (padding, a trailer)
    // can be taken for the inner packet.
    let frame = view.frame.get(..encap.end as usize).unwrap_or(view.frame);
    let wire = encap.wire_end;
    let off = encap.start as usize;
    let mut info = LinkInfo::default();
    let net = match encap.inner {
        Inner::Ip => link::raw_ip(frame, off, &mut info)?,
        Inner::Ethernet => {
            let eth = header_at::<14>(frame, off, Layer::Tunnel)?;
            link::ethertype_chain(frame, be16(eth[12], eth[13]), off + 14, &mut info)?
        }
        Inner::Mpls => link::mpls(frame, off, &mut info)?,
        Inner::Ppp => link::ppp_at(frame, off, &mut info)?,
        Inner::Ieee80211 => link::ieee802_11(frame, off, &mut info)?,
    };
    // The same match as in `decode`, on purpose: sharing it through a helper that
    // returns a `Result` of a tuple made `FiveTuple::extract` half again slower
    // (benches/extract.rs, synthetic set: 45 -> 69 us per 4,096 packets).
    let (ipv, upper) = match net {
        link::Net::Ipv4(o) => {
            let (h, u) = ip::decode_ipv4(frame, o, wire)?;
            (Some(h), u)
        }
        link::Net::Ipv6(o) => {
            let (h, u) = ip::decode_ipv6(frame, o, wire)?;
            (Some(h), u)
        }
        link::Net::Other => (None, ip::opaque_payload(frame.len(), 0, 0)),
    };
    Ok(Headers {
        link: view.link,
        has_mac: false,
        vlan: if info.vlan.depth() > 0 { info.vlan } else { outer.vlan },
        mpls_depth: outer.mpls_depth.saturating_add(info.mpls_depth),
        ethertype: info.ethertype,
        ip: ipv,
        transport: upper.transport,
        payload_offset: upper.payload_offset,
        payload_len: upper.payload_len,
        payload_wire_len: upper.payload_wire_len,
        frame_len: outer.frame_len,
        truncated: upper.truncated || outer.truncated,
    })
}

type Found = Result<(TunnelKind, Inner, usize), DecodeError>;

/// GRE (RFC 2784 with RFC 2890's key and sequence number; version 1 is PPTP's).
#[inline(always)]
fn gre(p: &[u8]) -> Found {
    let h = header_at::<4>(p, 0, Layer::Tunnel)?;
    let (flags, version) = (h[0], h[1] & 0x07);
    let proto = be16(h[2], h[3]);
    const C: u8 = 0x80;
    const R: u8 = 0x40;
    const K: u8 = 0x20;
    const S: u8 = 0x10;
    const STRICT_ROUTE_AND_RECUR: u8 = 0x0f;
    if flags & (R | STRICT_ROUTE_AND_RECUR) != 0 {
        // Source routing (RFC 1701) is deprecated; nothing sends it any more.
        return Err(DecodeError::new(Layer::Tunnel, DecodeErrorKind::BadVersion(flags)));
    }
    let mut len = 4;
    match version {
        0 => {
            if flags & C != 0 {
                len += 4;
            }
            if flags & K != 0 {
                len += 4;
            }
            if flags & S != 0 {
                len += 4;
            }
        }
        1 => {
            // Enhanced GRE: no checksum, key always present, optional sequence and
            // acknowledgment numbers (the A flag is the top bit of the second byte).
            if proto != GRE_PPP || flags & C != 0 || flags & K == 0 {
                return Err(DecodeError::new(Layer::Tunnel, DecodeErrorKind::BadVersion(version)));
            }
            len += 4;
            if flags & S != 0 {
                len += 4;
            }
            if h[1] & 0x80 != 0 {
                len += 4;
            }
        }
        v => return Err(DecodeError::new(Layer::Tunnel, DecodeErrorKind::BadVersion(v))),
    }
    if len > p.len() {
        return Err(DecodeError::truncated(Layer::Tunnel, len, p.len()));
    }
    match proto {
        GRE_IPV4 | GRE_IPV6 => Ok((TunnelKind::Gre, Inner::Ip, len)),
        GRE_TEB => Ok((TunnelKind::Gre, Inner::Ethernet, len)),
        GRE_MPLS => Ok((TunnelKind::Gre, Inner::Mpls, len)),
        GRE_PPP => {
            // An empty PPTP packet carries only an acknowledgment.
            if len == p.len() {
                return Err(DecodeError::truncated(Layer::Tunnel, len + 1, p.len()));
            }
            Ok((TunnelKind::Gre, Inner::Ppp, len))
        }
        p if GRE_ARUBA.contains(&p) => Ok((TunnelKind::Gre, Inner::Ieee80211, len)),
        GRE_ERSPAN_1_2 if flags & S == 0 => Ok((TunnelKind::Erspan, Inner::Ethernet, len)),
        GRE_ERSPAN_1_2 => {
            // Type II: an 8-byte header whose version nibble is 1.
            let e = header_at::<8>(p, len, Layer::Tunnel)?;
            erspan_version(e[0], 1)?;
            Ok((TunnelKind::Erspan, Inner::Ethernet, len + 8))
        }
        GRE_ERSPAN_3 => {
            // Type III: 12 bytes (version 2), plus an 8-byte platform-specific
            // sub-header when the O flag (lowest bit of the last byte) is set.
            let e = header_at::<12>(p, len, Layer::Tunnel)?;
            erspan_version(e[0], 2)?;
            let extra = if e[11] & 0x01 != 0 { 8 } else { 0 };
            Ok((TunnelKind::Erspan, Inner::Ethernet, len + 12 + extra))
        }
        _ => Err(DecodeError::new(Layer::Tunnel, DecodeErrorKind::UnknownProtocol(proto))),
    }
}

/// The version nibble of an ERSPAN header's first byte must be `want`.
#[inline(always)]
fn erspan_version(first: u8, want: u8) -> Result<(), DecodeError> {
    match first >> 4 {
        v if v == want => Ok(()),
        v => Err(DecodeError::new(Layer::Tunnel, DecodeErrorKind::BadVersion(v))),
    }
}

/// VXLAN: 8 bytes, the I flag (0x08) set, then Ethernet. Without the I flag the datagram
/// is not VXLAN (`None`).
#[inline(always)]
fn vxlan(p: &[u8]) -> Option<Found> {
    let h = match header_at::<8>(p, 0, Layer::Tunnel) {
        Ok(h) => h,
        Err(e) => return Some(Err(e)),
    };
    (h[0] & 0x08 != 0).then_some(Ok((TunnelKind::Vxlan, Inner::Ethernet, 8)))
}

/// Geneve: version 0, options length in 4-byte words, protocol type.
#[inline(always)]
fn geneve(p: &[u8]) -> Option<Found> {
    let h = match header_at::<8>(p, 0, Layer::Tunnel) {
        Ok(h) => h,
        Err(e) => return Some(Err(e)),
    };
    if h[0] >> 6 != 0 {
        return None;
    }
    let len = 8 + usize::from(h[0] & 0x3f) * 4;
    let inner = match be16(h[2], h[3]) {
        GRE_TEB => Inner::Ethernet,
        GRE_IPV4 | GRE_IPV6 => Inner::Ip,
        other => {
            return Some(Err(DecodeError::new(
                Layer::Tunnel,
                DecodeErrorKind::UnknownProtocol(other),
            )))
        }
    };
    Some(Ok((TunnelKind::Geneve, inner, len)))
}

/// GTP-U version 1: only G-PDU messages (type 255) carry user packets.
#[inline(always)]
fn gtp_u(p: &[u8]) -> Option<Found> {
    let h = match header_at::<8>(p, 0, Layer::Tunnel) {
        Ok(h) => h,
        Err(e) => return Some(Err(e)),
    };
    // Version 1 with the protocol-type bit (GTP, not GTP').
    if h[0] >> 4 != 0x3 || h[1] != 0xff {
        return None;
    }
    // The length field (everything after the mandatory 8 bytes) is not checked against
    // the datagram: the inner IP header's own length is, when it is decoded.
    let mut len = 8;
    if h[0] & 0x07 != 0 {
        // Sequence number, N-PDU number and next extension type are present when any
        // of E, S or PN is set.
        let opt = match header_at::<4>(p, 8, Layer::Tunnel) {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        len += 4;
        let mut next = if h[0] & 0x04 != 0 { opt[3] } else { 0 };
        // Each extension header: a length in 4-byte units, content, the next type.
        // Bounded by the packet: every step consumes at least 4 bytes.
        while next != 0 {
            let n = match p.get(len) {
                Some(&n) if n > 0 => usize::from(n) * 4,
                Some(_) => return Some(Err(bad(0))),
                None => return Some(Err(DecodeError::truncated(Layer::Tunnel, len + 1, p.len()))),
            };
            let Some(&after) = p.get(len + n - 1) else {
                return Some(Err(DecodeError::truncated(Layer::Tunnel, len + n, p.len())));
            };
            len += n;
            next = after;
        }
    }
    if len == p.len() {
        // An echo or end-marker without a payload carries no packet.
        return None;
    }
    Some(Ok((TunnelKind::GtpU, Inner::Ip, len)))
}

/// Teredo: IPv6, possibly behind an authentication header (`00 01`) and an origin
/// indication (`00 00`). Anything that does not lead to an IPv6 header is not Teredo.
fn teredo(p: &[u8]) -> Option<Found> {
    let mut off = 0usize;
    if p.get(..2) == Some(&[0, 1]) {
        // Authentication: client id length, auth value length, then 8-byte nonce and
        // a confirmation byte.
        let id_len = usize::from(*p.get(2)?);
        let auth_len = usize::from(*p.get(3)?);
        off += 4 + id_len + auth_len + 9;
    }
    if p.get(off..off + 2) == Some(&[0, 0]) {
        off += 8;
    }
    let first = *p.get(off)?;
    if first >> 4 != 6 || p.len() < off + 40 {
        return None;
    }
    Some(Ok((TunnelKind::Teredo, Inner::Ip, off)))
}

/// A UDP payload that is a bare IPv6 header from or to a Teredo address (2001:0::/32),
/// whose payload length fits in the datagram.
#[inline]
fn looks_like_teredo(frame: &[u8], outer: &Headers) -> bool {
    let start = outer.payload_offset as usize;
    let Some(h) = frame.get(start..).and_then(|b| b.first_chunk::<40>()) else { return false };
    let teredo = |at: usize| h.get(at..at + 4) == Some(&[0x20, 0x01, 0, 0]);
    h[0] >> 4 == 6
        && 40 + usize::from(be16(h[4], h[5])) <= outer.payload_wire_len as usize
        && (teredo(8) || teredo(24))
}

/// AYIYA: identity and signature lengths, opcode 1 (forward), next header 4 or 41.
fn ayiya(p: &[u8]) -> Option<Found> {
    let h = match header_at::<8>(p, 0, Layer::Tunnel) {
        Ok(h) => h,
        Err(e) => return Some(Err(e)),
    };
    let id_len = 1usize << (h[0] >> 4);
    let sig_len = usize::from(h[1] >> 4) * 4;
    let opcode = h[2] & 0x0f;
    if opcode != 1 || !matches!(h[3], PROTO_IPIP | PROTO_IPV6) {
        return None;
    }
    Some(Ok((TunnelKind::Ayiya, Inner::Ip, 8 + id_len + sig_len)))
}

#[cfg(test)]
mod tests;
