//! Link layers and what sits between them and IP: Ethernet, 802.1Q/802.1ad, MPLS, PPPoE,
//! Linux SLL/SLL2, BSD null/loop, NFLOG and raw IP.

use super::{
    be16, header_at, DecodeError, DecodeErrorKind, Layer, LinkInfo, LinkType, MAX_MPLS_LABELS,
};

/// Where the network layer starts, and what it is.
#[derive(Copy, Clone, Debug)]
pub(super) enum Net {
    Ipv4(usize),
    Ipv6(usize),
    /// Not IP (or not a kind we read): `Headers::ethertype` says what.
    Other,
}

pub(super) const ETH_IPV4: u16 = 0x0800;
pub(super) const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
pub(super) const ETH_MPLS_UC: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_SESSION: u16 = 0x8864;
/// Cisco FabricPath: a 2-byte FTag/TTL field, then the original Ethernet header.
const ETH_FABRICPATH: u16 = 0x8903;
/// Cisco VN-Tag (802.1Qbh): a 4-byte tag, then the next EtherType.
const ETH_VNTAG: u16 = 0x8926;

const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

// Address families seen in DLT_NULL / DLT_LOOP headers. IPv6's number differs by OS:
// 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (macOS), 10 (Linux).
const AF_INET: u32 = 2;
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

const NFLOG_TLV_PAYLOAD: u16 = 9;

#[inline(always)]
pub(super) fn decode_link(
    frame: &[u8],
    link: LinkType,
    h: &mut LinkInfo,
) -> Result<Net, DecodeError> {
    // Ethernet, most captures' link type, is tested before the match, which the
    // compiler lays out as a ladder of comparisons (`decode_any` tests Ethernet carrying
    // IPv4 before calling this).
    if link == LinkType::ETHERNET {
        let eth = header_at::<14>(frame, 0, Layer::Link)?;
        h.has_mac = true;
        return ethertype_chain(frame, be16(eth[12], eth[13]), 14, h);
    }
    match link {
        LinkType::RAW => raw_ip(frame, 0, h),
        LinkType::IPV4 => {
            h.ethertype = ETH_IPV4;
            Ok(Net::Ipv4(0))
        }
        LinkType::IPV6 => {
            h.ethertype = ETH_IPV6;
            Ok(Net::Ipv6(0))
        }
        LinkType::NULL | LinkType::LOOP => {
            let hdr = header_at::<4>(frame, 0, Layer::Link)?;
            let af = if link == LinkType::LOOP {
                u32::from_be_bytes(*hdr)
            } else {
                // Host byte order of the capturing machine: a family number is small, so
                // whichever reading is small is the right one.
                let le = u32::from_le_bytes(*hdr);
                if le <= 0xffff {
                    le
                } else {
                    u32::from_be_bytes(*hdr)
                }
            };
            if af == AF_INET {
                h.ethertype = ETH_IPV4;
                Ok(Net::Ipv4(4))
            } else if AF_INET6.contains(&af) {
                h.ethertype = ETH_IPV6;
                Ok(Net::Ipv6(4))
            } else {
                Ok(Net::Other)
            }
        }
        LinkType::LINUX_SLL => {
            let hdr = header_at::<16>(frame, 0, Layer::Link)?;
            ethertype_chain(frame, be16(hdr[14], hdr[15]), 16, h)
        }
        LinkType::LINUX_SLL2 => {
            let hdr = header_at::<20>(frame, 0, Layer::Link)?;
            ethertype_chain(frame, be16(hdr[0], hdr[1]), 20, h)
        }
        LinkType::NFLOG => nflog(frame, h),
        LinkType::PPP | LinkType::PPP_HDLC => ppp(frame, h),
        LinkType::IEEE802_11 => ieee802_11(frame, 0, h),
        LinkType::IEEE802_11_RADIOTAP => {
            // Radiotap: version, pad, then its own length (little-endian).
            let rt = header_at::<4>(frame, 0, Layer::Link)?;
            ieee802_11(frame, usize::from(u16::from_le_bytes([rt[2], rt[3]])), h)
        }
        other => Err(DecodeError::new(Layer::Link, DecodeErrorKind::UnsupportedLinkType(other.0))),
    }
}

/// Follow EtherTypes through VLAN tags, MPLS and PPPoE until IP or something else.
#[inline(always)]
pub(super) fn ethertype_chain(
    frame: &[u8],
    mut ethertype: u16,
    mut off: usize,
    h: &mut LinkInfo,
) -> Result<Net, DecodeError> {
    loop {
        h.ethertype = ethertype;
        match ethertype {
            ETH_IPV4 => return Ok(Net::Ipv4(off)),
            ETH_IPV6 => return Ok(Net::Ipv6(off)),
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => {
                let tag = header_at::<4>(frame, off, Layer::Vlan)?;
                h.vlan.push(be16(tag[0], tag[1]) & 0x0fff)?;
                ethertype = be16(tag[2], tag[3]);
                off += 4;
            }
            ETH_FABRICPATH => {
                // FTag/TTL (2), inner destination and source MACs (12), EtherType (2).
                let fp = header_at::<16>(frame, off, Layer::Link)?;
                ethertype = be16(fp[14], fp[15]);
                off += 16;
            }
            ETH_VNTAG => {
                let tag = header_at::<6>(frame, off, Layer::Vlan)?;
                ethertype = be16(tag[4], tag[5]);
                off += 6;
            }
            ETH_MPLS_UC | ETH_MPLS_MC => return mpls(frame, off, h),
            ETH_PPPOE_SESSION => {
                // Version/type, code, session id, length, then PPP's protocol field
                // (two bytes, or one when the peers negotiated field compression).
                header_at::<7>(frame, off, Layer::Pppoe)?;
                return ppp_at(frame, off + 6, h);
            }
            _ => return Ok(Net::Other),
        }
    }
}

/// Pop an MPLS label stack; what follows the bottom label is IP, told by its version
/// nibble (pseudowire Ethernet is left to the tunnel decoder).
pub(super) fn mpls(frame: &[u8], mut off: usize, h: &mut LinkInfo) -> Result<Net, DecodeError> {
    loop {
        if h.mpls_depth >= MAX_MPLS_LABELS {
            return Err(DecodeError::new(Layer::Mpls, DecodeErrorKind::TooManyMplsLabels));
        }
        let entry = header_at::<4>(frame, off, Layer::Mpls)?;
        h.mpls_depth += 1;
        off += 4;
        if entry[2] & 0x01 != 0 {
            break;
        }
    }
    let first = header_at::<1>(frame, off, Layer::Mpls)?[0];
    if first >> 4 == 0 {
        // A pseudowire control word (RFC 4385: first nibble 0), then the emulated
        // Ethernet frame.
        let eth = header_at::<14>(frame, off + 4, Layer::Mpls)?;
        return ethertype_chain(frame, be16(eth[12], eth[13]), off + 4 + 14, h);
    }
    raw_ip(frame, off, h)
}

/// IP whose version only its first nibble tells.
#[inline(always)]
pub(super) fn raw_ip(frame: &[u8], off: usize, h: &mut LinkInfo) -> Result<Net, DecodeError> {
    let first = header_at::<1>(frame, off, Layer::Link)?;
    match first[0] >> 4 {
        4 => {
            h.ethertype = ETH_IPV4;
            Ok(Net::Ipv4(off))
        }
        6 => {
            h.ethertype = ETH_IPV6;
            Ok(Net::Ipv6(off))
        }
        _ => Ok(Net::Other),
    }
}

/// NFLOG: a 4-byte header (family, version, resource id), then TLVs whose length and type
/// are in the capturing host's byte order (little-endian in practice); the packet is the
/// payload TLV.
fn nflog(frame: &[u8], h: &mut LinkInfo) -> Result<Net, DecodeError> {
    let hdr = header_at::<4>(frame, 0, Layer::Link)?;
    let family = hdr[0];
    let mut off = 4usize;
    loop {
        let tlv = header_at::<4>(frame, off, Layer::Link)?;
        let len = usize::from(u16::from_le_bytes([tlv[0], tlv[1]]));
        let ty = u16::from_le_bytes([tlv[2], tlv[3]]) & 0x7fff;
        if len < 4 {
            return Err(DecodeError::new(Layer::Link, DecodeErrorKind::BadLength(len as u16)));
        }
        if ty == NFLOG_TLV_PAYLOAD {
            let start = off + 4;
            return match u32::from(family) {
                AF_INET => {
                    h.ethertype = ETH_IPV4;
                    Ok(Net::Ipv4(start))
                }
                10 => {
                    h.ethertype = ETH_IPV6;
                    Ok(Net::Ipv6(start))
                }
                _ => raw_ip(frame, start, h),
            };
        }
        // TLVs are padded to 4 bytes.
        off += (len + 3) & !3;
    }
}

/// PPP in HDLC-like framing (LINKTYPE_PPP, LINKTYPE_PPP_HDLC): an optional `ff 03`
/// address/control pair, then a 1- or 2-byte protocol number.
fn ppp(frame: &[u8], h: &mut LinkInfo) -> Result<Net, DecodeError> {
    ppp_at(frame, 0, h)
}

/// PPP starting at `off` (also inside PPTP's enhanced GRE).
pub(super) fn ppp_at(frame: &[u8], start: usize, h: &mut LinkInfo) -> Result<Net, DecodeError> {
    let head = header_at::<2>(frame, start, Layer::Link)?;
    let mut off = if *head == [0xff, 0x03] { start + 2 } else { start };
    let first = header_at::<1>(frame, off, Layer::Link)?[0];
    // Protocol numbers are odd in their last byte; an odd first byte is a compressed
    // one-byte protocol field (RFC 1661, section 6.5).
    let proto = if first & 1 == 1 {
        off += 1;
        u16::from(first)
    } else {
        let p = header_at::<2>(frame, off, Layer::Link)?;
        off += 2;
        be16(p[0], p[1])
    };
    match proto {
        PPP_IPV4 => {
            h.ethertype = ETH_IPV4;
            Ok(Net::Ipv4(off))
        }
        PPP_IPV6 => {
            h.ethertype = ETH_IPV6;
            Ok(Net::Ipv6(off))
        }
        _ => Ok(Net::Other),
    }
}

/// An IEEE 802.11 data frame starting at `off`: its MAC header (24 bytes, 30 with four
/// addresses, +2 for QoS, +4 for HT control), then LLC/SNAP carrying an EtherType.
/// Management, control and encrypted frames are not IP to us.
pub(super) fn ieee802_11(frame: &[u8], off: usize, h: &mut LinkInfo) -> Result<Net, DecodeError> {
    let fc = header_at::<2>(frame, off, Layer::Link)?;
    let (kind, subtype, flags) = ((fc[0] >> 2) & 0x3, fc[0] >> 4, fc[1]);
    const DATA: u8 = 2;
    const PROTECTED: u8 = 0x40;
    if kind != DATA || flags & PROTECTED != 0 || subtype & 0x4 != 0 {
        // Not data, encrypted, or a null-function subtype that carries no payload.
        return Ok(Net::Other);
    }
    let mut len = 24;
    if flags & 0x03 == 0x03 {
        len += 6; // fourth address (WDS)
    }
    let qos = subtype & 0x8 != 0;
    if qos {
        len += 2;
        if flags & 0x80 != 0 {
            len += 4; // HT control
        }
    }
    let llc = header_at::<8>(frame, off + len, Layer::Link)?;
    if llc[..6] != [0xaa, 0xaa, 0x03, 0, 0, 0] {
        return Ok(Net::Other);
    }
    ethertype_chain(frame, be16(llc[6], llc[7]), off + len + 8, h)
}
