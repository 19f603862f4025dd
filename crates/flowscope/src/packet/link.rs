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

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_MPLS_UC: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_SESSION: u16 = 0x8864;

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
    match link {
        LinkType::ETHERNET => {
            let eth = header_at::<14>(frame, 0, Layer::Link)?;
            h.has_mac = true;
            ethertype_chain(frame, be16(eth[12], eth[13]), 14, h)
        }
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
        other => Err(DecodeError::new(Layer::Link, DecodeErrorKind::UnsupportedLinkType(other.0))),
    }
}

/// Follow EtherTypes through VLAN tags, MPLS and PPPoE until IP or something else.
#[inline(always)]
fn ethertype_chain(
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
            ETH_MPLS_UC | ETH_MPLS_MC => return mpls(frame, off, h),
            ETH_PPPOE_SESSION => {
                // Version/type, code, session id, length, then the 2-byte PPP protocol.
                let hdr = header_at::<8>(frame, off, Layer::Pppoe)?;
                off += 8;
                return match be16(hdr[6], hdr[7]) {
                    PPP_IPV4 => Ok(Net::Ipv4(off)),
                    PPP_IPV6 => Ok(Net::Ipv6(off)),
                    _ => Ok(Net::Other),
                };
            }
            _ => return Ok(Net::Other),
        }
    }
}

/// Pop an MPLS label stack; what follows the bottom label is IP, told by its version
/// nibble (pseudowire Ethernet is left to the tunnel decoder).
fn mpls(frame: &[u8], mut off: usize, h: &mut LinkInfo) -> Result<Net, DecodeError> {
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
    raw_ip(frame, off, h)
}

/// IP whose version only its first nibble tells.
#[inline(always)]
fn raw_ip(frame: &[u8], off: usize, h: &mut LinkInfo) -> Result<Net, DecodeError> {
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
