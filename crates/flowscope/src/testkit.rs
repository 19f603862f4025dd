//! Test support: a frame builder and a classic-pcap writer (feature `testkit`).
//!
//! Tests, benchmarks, fuzz seed corpora and the sample captures in `samples/` are built
//! with this, so every fixture is something the project made itself. Frames come out with
//! correct IPv4 header, TCP, UDP and ICMP checksums, so Wireshark and Zeek read them
//! without complaint. Not for the hot path: it allocates freely.

use std::net::IpAddr;
use std::vec::Vec;

use crate::packet::{LinkType, TcpFlags};
use crate::time::Timestamp;

/// The transport part of a [`Frame`].
#[derive(Clone, Debug)]
pub enum L4 {
    /// A TCP segment.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number.
        ack: u32,
        /// Flags (`TcpFlags::*` bits).
        flags: u16,
        /// Window.
        window: u16,
        /// Raw option bytes, a multiple of 4 long (see [`Frame::tcp_options`]).
        options: Vec<u8>,
    },
    /// A UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// An ICMP (IPv4) or ICMPv6 (IPv6) message; the 4 bytes after the checksum are `rest`.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Identifier/sequence or unused bytes.
        rest: [u8; 4],
    },
    /// Any other protocol: the payload follows the IP header directly.
    Raw(u8),
}

/// A frame to build: link framing, IP, transport and payload.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Source address; its family picks IPv4 or IPv6.
    pub src: IpAddr,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// Transport header.
    pub l4: L4,
    /// Transport payload.
    pub payload: Vec<u8>,
    /// 802.1Q tags, outermost first (Ethernet only).
    pub vlans: Vec<u16>,
    /// MPLS labels, outermost first (Ethernet only).
    pub mpls: Vec<u32>,
    /// Link type to frame for: Ethernet, RAW, NULL, LINUX_SLL or LINUX_SLL2.
    pub link: LinkType,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 fragment: (offset in bytes, more fragments, id); IPv6 adds a fragment header.
    pub fragment: Option<(u16, bool, u32)>,
    /// IPv4 options (a multiple of 4 bytes).
    pub ipv4_options: Vec<u8>,
    /// IPv6 extension headers before the transport: (type, body); bodies are padded so
    /// each header is a multiple of 8 bytes (AH: of 4).
    pub ipv6_ext: Vec<(u8, Vec<u8>)>,
}

impl Frame {
    fn base(src: IpAddr, dst: IpAddr, l4: L4) -> Frame {
        Frame {
            src,
            dst,
            l4,
            payload: Vec::new(),
            vlans: Vec::new(),
            mpls: Vec::new(),
            link: LinkType::ETHERNET,
            ttl: 64,
            fragment: None,
            ipv4_options: Vec::new(),
            ipv6_ext: Vec::new(),
        }
    }

    /// A TCP segment with the given flags (`TcpFlags::*` bits), sequence and ack numbers.
    pub fn tcp(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u16,
        seq: u32,
        ack: u32,
    ) -> Frame {
        Frame::base(
            src,
            dst,
            L4::Tcp { sport, dport, seq, ack, flags, window: 65535, options: Vec::new() },
        )
    }

    /// A UDP datagram.
    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Frame {
        Frame::base(src, dst, L4::Udp { sport, dport })
    }

    /// An ICMP or ICMPv6 message (by address family).
    pub fn icmp(src: IpAddr, dst: IpAddr, ty: u8, code: u8, rest: [u8; 4]) -> Frame {
        Frame::base(src, dst, L4::Icmp { ty, code, rest })
    }

    /// Another IP protocol.
    pub fn raw(src: IpAddr, dst: IpAddr, proto: u8) -> Frame {
        Frame::base(src, dst, L4::Raw(proto))
    }

    /// Set the payload.
    pub fn payload(mut self, bytes: &[u8]) -> Frame {
        self.payload = bytes.to_vec();
        self
    }

    /// Add an 802.1Q tag (inside any already added).
    pub fn vlan(mut self, id: u16) -> Frame {
        self.vlans.push(id);
        self
    }

    /// Add an MPLS label (inside any already added).
    pub fn mpls(mut self, label: u32) -> Frame {
        self.mpls.push(label);
        self
    }

    /// Frame for another link type.
    pub fn link(mut self, link: LinkType) -> Frame {
        self.link = link;
        self
    }

    /// Make this an IP fragment.
    pub fn fragment(mut self, offset: u16, more: bool, id: u32) -> Frame {
        self.fragment = Some((offset, more, id));
        self
    }

    /// Set TCP options (padded with NOPs to a multiple of 4).
    pub fn tcp_options(mut self, opts: &[u8]) -> Frame {
        if let L4::Tcp { options, .. } = &mut self.l4 {
            *options = opts.to_vec();
            while options.len() % 4 != 0 {
                options.push(1);
            }
        }
        self
    }

    /// Add an IPv6 extension header.
    pub fn ipv6_ext(mut self, ty: u8, body: &[u8]) -> Frame {
        self.ipv6_ext.push((ty, body.to_vec()));
        self
    }

    /// Set IPv4 options (padded with zeros to a multiple of 4).
    pub fn ipv4_options(mut self, opts: &[u8]) -> Frame {
        self.ipv4_options = opts.to_vec();
        while self.ipv4_options.len() % 4 != 0 {
            self.ipv4_options.push(0);
        }
        self
    }

    fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => {
                if self.src.is_ipv6() {
                    58
                } else {
                    1
                }
            }
            L4::Raw(p) => p,
        }
    }

    /// The transport header and payload, checksummed.
    fn l4_bytes(&self) -> Vec<u8> {
        let mut seg = Vec::new();
        let csum_at;
        match &self.l4 {
            L4::Tcp { sport, dport, seq, ack, flags, window, options } => {
                seg.extend_from_slice(&sport.to_be_bytes());
                seg.extend_from_slice(&dport.to_be_bytes());
                seg.extend_from_slice(&seq.to_be_bytes());
                seg.extend_from_slice(&ack.to_be_bytes());
                let doff = ((20 + options.len()) / 4) as u16;
                seg.extend_from_slice(&((doff << 12) | (flags & 0x1ff)).to_be_bytes());
                seg.extend_from_slice(&window.to_be_bytes());
                seg.extend_from_slice(&[0, 0, 0, 0]);
                seg.extend_from_slice(options);
                csum_at = Some(16);
            }
            L4::Udp { sport, dport } => {
                seg.extend_from_slice(&sport.to_be_bytes());
                seg.extend_from_slice(&dport.to_be_bytes());
                let len = (8 + self.payload.len()) as u16;
                seg.extend_from_slice(&len.to_be_bytes());
                seg.extend_from_slice(&[0, 0]);
                csum_at = Some(6);
            }
            L4::Icmp { ty, code, rest } => {
                seg.extend_from_slice(&[*ty, *code, 0, 0]);
                seg.extend_from_slice(rest);
                csum_at = Some(2);
            }
            L4::Raw(_) => csum_at = None,
        }
        seg.extend_from_slice(&self.payload);
        if let Some(at) = csum_at {
            if self.fragment.is_none() {
                let pseudo = match (&self.l4, self.src, self.dst) {
                    // ICMPv4 has no pseudo-header.
                    (L4::Icmp { .. }, IpAddr::V4(_), _) => Vec::new(),
                    _ => pseudo_header(self.src, self.dst, self.proto(), seg.len()),
                };
                let mut c = checksum(&[&pseudo, &seg]);
                if c == 0 && matches!(self.l4, L4::Udp { .. }) {
                    c = 0xffff;
                }
                seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
        }
        seg
    }

    fn ip_bytes(&self) -> Vec<u8> {
        let l4 = self.l4_bytes();
        let mut out = Vec::new();
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let hlen = 20 + self.ipv4_options.len();
                let total = (hlen + l4.len()) as u16;
                let (frag, id) = match self.fragment {
                    Some((off, more, id)) => {
                        ((off >> 3) | if more { 0x2000 } else { 0 }, id as u16)
                    }
                    None => (0x4000, 0x1234), // DF
                };
                out.push(0x40 | (hlen / 4) as u8);
                out.push(0);
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&frag.to_be_bytes());
                out.push(self.ttl);
                out.push(self.proto());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
                out.extend_from_slice(&self.ipv4_options);
                let c = checksum(&[&out]);
                out[10..12].copy_from_slice(&c.to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut ext = Vec::new();
                let mut headers: Vec<(u8, Vec<u8>)> = self.ipv6_ext.clone();
                if let Some((off, more, id)) = self.fragment {
                    let mut body = Vec::new();
                    body.extend_from_slice(&(off | u16::from(more)).to_be_bytes());
                    body.extend_from_slice(&id.to_be_bytes());
                    headers.push((44, body));
                }
                let mut types: Vec<u8> = headers.iter().map(|(t, _)| *t).collect();
                types.push(self.proto());
                for (i, (ty, body)) in headers.iter().enumerate() {
                    let next = types[i + 1];
                    let mut hdr = vec![next, 0];
                    hdr.extend_from_slice(body);
                    let unit = if *ty == 51 { 4 } else { 8 };
                    while hdr.len() % unit != 0 || hdr.len() < 8 {
                        hdr.push(0);
                    }
                    hdr[1] = match *ty {
                        44 => 0,
                        51 => (hdr.len() / 4 - 2) as u8,
                        _ => (hdr.len() / 8 - 1) as u8,
                    };
                    ext.extend_from_slice(&hdr);
                }
                let plen = (ext.len() + l4.len()) as u16;
                out.extend_from_slice(&[0x60, 0, 0, 0]);
                out.extend_from_slice(&plen.to_be_bytes());
                out.push(types[0]);
                out.push(self.ttl);
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
                out.extend_from_slice(&ext);
            }
            _ => panic!("testkit: source and destination must be the same family"),
        }
        out.extend_from_slice(&l4);
        out
    }

    /// Build the frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let ip = self.ip_bytes();
        let v6 = self.src.is_ipv6();
        let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
        let mut out = Vec::new();
        match self.link {
            LinkType::ETHERNET => {
                out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
                out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
                let inner_type = if self.mpls.is_empty() { ethertype } else { 0x8847 };
                let mut tags = Vec::new();
                for (i, id) in self.vlans.iter().enumerate() {
                    let tpid: u16 = if i == 0 && self.vlans.len() > 1 { 0x88a8 } else { 0x8100 };
                    tags.push((tpid, *id));
                }
                if let Some((tpid, _)) = tags.first() {
                    out.extend_from_slice(&tpid.to_be_bytes());
                    for (i, (_, id)) in tags.iter().enumerate() {
                        out.extend_from_slice(&id.to_be_bytes());
                        let next = tags.get(i + 1).map(|t| t.0).unwrap_or(inner_type);
                        out.extend_from_slice(&next.to_be_bytes());
                    }
                } else {
                    out.extend_from_slice(&inner_type.to_be_bytes());
                }
                for (i, label) in self.mpls.iter().enumerate() {
                    let bos = u32::from(i + 1 == self.mpls.len());
                    out.extend_from_slice(&((label << 12) | (bos << 8) | 64).to_be_bytes());
                }
                out.extend_from_slice(&ip);
                while out.len() < 60 {
                    out.push(0); // Ethernet minimum frame size (without FCS)
                }
            }
            LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => out.extend_from_slice(&ip),
            LinkType::NULL => {
                let af: u32 = if v6 { 30 } else { 2 };
                out.extend_from_slice(&af.to_le_bytes());
                out.extend_from_slice(&ip);
            }
            LinkType::LINUX_SLL => {
                out.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
                out.extend_from_slice(&ethertype.to_be_bytes());
                out.extend_from_slice(&ip);
            }
            LinkType::LINUX_SLL2 => {
                out.extend_from_slice(&ethertype.to_be_bytes());
                out.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
                out.extend_from_slice(&ip);
            }
            other => panic!("testkit: cannot frame for link type {}", other.0),
        }
        out
    }
}

fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => {}
    }
    p
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in part.iter() {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Write frames as a classic little-endian microsecond pcap file.
pub fn write_pcap(link: LinkType, snaplen: u32, packets: &[(Timestamp, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&snaplen.to_le_bytes());
    out.extend_from_slice(&link.0.to_le_bytes());
    for (ts, frame) in packets {
        let caplen = frame.len().min(snaplen as usize);
        out.extend_from_slice(&(ts.secs() as u32).to_le_bytes());
        out.extend_from_slice(&(ts.subsec_nanos() / 1000).to_le_bytes());
        out.extend_from_slice(&(caplen as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame[..caplen]);
    }
    out
}

/// Shorthand for the common TCP flag combinations.
pub mod flags {
    use super::TcpFlags;
    /// SYN.
    pub const SYN: u16 = TcpFlags::SYN;
    /// SYN+ACK.
    pub const SYN_ACK: u16 = TcpFlags::SYN | TcpFlags::ACK;
    /// ACK.
    pub const ACK: u16 = TcpFlags::ACK;
    /// PSH+ACK.
    pub const PSH_ACK: u16 = TcpFlags::PSH | TcpFlags::ACK;
    /// FIN+ACK.
    pub const FIN_ACK: u16 = TcpFlags::FIN | TcpFlags::ACK;
    /// RST.
    pub const RST: u16 = TcpFlags::RST;
    /// RST+ACK.
    pub const RST_ACK: u16 = TcpFlags::RST | TcpFlags::ACK;
}
