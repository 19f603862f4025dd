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

    /// This packet cut into IP fragments at `cuts` (byte offsets into the IP payload,
    /// ascending multiples of 8), each built like `self` (link type, tags, options) with
    /// identification `id`; in order, the last one without the more-fragments flag.
    /// IPv6 extension headers of `self` are not carried over.
    pub fn fragments(&self, cuts: &[usize], id: u32) -> Vec<Vec<u8>> {
        let whole = Frame { fragment: None, ipv6_ext: Vec::new(), ..self.clone() };
        let raw = whole.clone().link(LinkType::RAW).build();
        let header = if self.src.is_ipv6() { 40 } else { 20 + self.ipv4_options.len() };
        let l4 = &raw[header..];
        let bounds: Vec<usize> =
            core::iter::once(0).chain(cuts.iter().copied()).chain([l4.len()]).collect();
        bounds
            .windows(2)
            .map(|w| {
                Frame { l4: L4::Raw(self.proto()), ..whole.clone() }
                    .payload(&l4[w[0]..w[1]])
                    .fragment(w[0] as u16, w[1] != l4.len(), id)
                    .build()
            })
            .collect()
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
        let csum_at = match &self.l4 {
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
                Some(16)
            }
            L4::Udp { sport, dport } => {
                seg.extend_from_slice(&sport.to_be_bytes());
                seg.extend_from_slice(&dport.to_be_bytes());
                let len = (8 + self.payload.len()) as u16;
                seg.extend_from_slice(&len.to_be_bytes());
                seg.extend_from_slice(&[0, 0]);
                Some(6)
            }
            L4::Icmp { ty, code, rest } => {
                seg.extend_from_slice(&[*ty, *code, 0, 0]);
                seg.extend_from_slice(rest);
                Some(2)
            }
            L4::Raw(_) => None,
        };
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

/// [`decode`](crate::packet::decode) without its fast path for the commonest frames
/// (Ethernet; IPv4 without options or fragmentation, or IPv6 without extension headers;
/// TCP or UDP): the layer-by-layer walk alone, for tests and fuzz targets that hold the
/// two equal on every frame.
pub fn decode_layered(
    view: &crate::packet::PacketView<'_>,
) -> Result<crate::packet::Headers, crate::packet::DecodeError> {
    crate::packet::decode_any(view)
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

/// One interface of a pcapng file built by [`PcapNgWriter`].
#[derive(Copy, Clone, Debug)]
pub struct NgInterface {
    /// Link type.
    pub link: LinkType,
    /// Snapshot length (0 = none).
    pub snaplen: u32,
    /// `if_tsresol` option value, if written (default resolution is microseconds).
    pub tsresol: Option<u8>,
    /// `if_tsoffset` option value in seconds, if written.
    pub tsoffset: Option<i64>,
}

/// Builds pcapng files block by block, in either byte order.
#[derive(Debug, Default)]
pub struct PcapNgWriter {
    /// The file so far.
    pub out: Vec<u8>,
    big_endian: bool,
}

impl PcapNgWriter {
    fn u16(&mut self, v: u16) {
        let b = if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        self.out.extend_from_slice(&b);
    }

    fn u32(&mut self, v: u32) {
        let b = if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        self.out.extend_from_slice(&b);
    }

    fn block(&mut self, ty: u32, body: impl FnOnce(&mut Self)) {
        let start = self.out.len();
        self.u32(ty);
        self.u32(0); // length, patched below
        body(self);
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
        let len = (self.out.len() - start + 4) as u32;
        self.u32(len);
        let b = if self.big_endian { len.to_be_bytes() } else { len.to_le_bytes() };
        self.out[start + 4..start + 8].copy_from_slice(&b);
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    /// Start a section (Section Header Block) in the given byte order.
    pub fn section(&mut self, big_endian: bool) {
        self.big_endian = big_endian;
        self.block(0x0a0d_0d0a, |w| {
            w.u32(0x1a2b_3c4d);
            w.u16(1);
            w.u16(0);
            w.u32(0xffff_ffff);
            w.u32(0xffff_ffff);
        });
    }

    /// Declare an interface (Interface Description Block).
    pub fn interface(&mut self, i: NgInterface) {
        self.block(1, |w| {
            w.u16(i.link.0 as u16);
            w.u16(0);
            w.u32(i.snaplen);
            if let Some(r) = i.tsresol {
                w.u16(9);
                w.u16(1);
                w.out.push(r);
                w.pad();
            }
            if let Some(o) = i.tsoffset {
                w.u16(14);
                w.u16(8);
                let b = if w.big_endian { o.to_be_bytes() } else { o.to_le_bytes() };
                w.out.extend_from_slice(&b);
            }
            w.u16(0);
            w.u16(0);
        });
    }

    /// An Enhanced Packet Block with a raw timestamp in the interface's units.
    pub fn epb(&mut self, if_id: u32, ts_units: u64, data: &[u8], orig_len: u32) {
        self.block(6, |w| {
            w.u32(if_id);
            w.u32((ts_units >> 32) as u32);
            w.u32(ts_units as u32);
            w.u32(data.len() as u32);
            w.u32(orig_len);
            w.out.extend_from_slice(data);
        });
    }

    /// A Simple Packet Block (interface 0, no timestamp).
    pub fn spb(&mut self, data: &[u8]) {
        self.block(3, |w| {
            w.u32(data.len() as u32);
            w.out.extend_from_slice(data);
        });
    }

    /// A block of a type readers skip (a Name Resolution Block with no records).
    pub fn other(&mut self) {
        self.block(4, |w| {
            w.u16(0);
            w.u16(0);
        });
    }
}

/// A small deterministic random generator (xorshift64*) for generated workloads and
/// seeds: the same seed gives the same sequence on every platform. Not for anything
/// that needs unpredictability.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is nudged to one).
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n > 0`; slightly biased for huge `n`, which is fine here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Light reordering: swap about one item in `one_in` with its successor, never
    /// moving an item twice (so nothing travels more than one place).
    pub fn swap_neighbours<T>(&mut self, items: &mut [T], one_in: u64) {
        let mut i = 0;
        while i + 1 < items.len() {
            if self.below(one_in) == 0 {
                items.swap(i, i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
    }
}

/// The demo capture shipped as `samples/demo.pcap`: a small, varied, fully synthetic
/// session built with this module (so its provenance is this project). It holds an HTTP
/// exchange over IPv4 with a full handshake and FIN close, a refused connection (SYN then
/// RST), a DNS query and answer, an ICMP echo pair, an IPv6 TCP exchange on VLAN 42 that
/// ends with a RST, and an ARP request.
///
/// `cargo run -p flowscope --example make_sample` rewrites the file; a test checks that
/// the committed file equals what this function builds.
pub fn demo_capture() -> Vec<u8> {
    use flags::*;
    let client: IpAddr = "192.0.2.10".parse().unwrap_or(IpAddr::from([192, 0, 2, 10]));
    let server: IpAddr = IpAddr::from([198, 51, 100, 80]);
    let dns: IpAddr = IpAddr::from([198, 51, 100, 53]);
    let c6: IpAddr = "2001:db8::10".parse().unwrap_or(IpAddr::from([0u8; 16]));
    let s6: IpAddr = "2001:db8::443".parse().unwrap_or(IpAddr::from([0u8; 16]));
    let base = 1_767_225_600_000_000u64; // 2026-01-01T00:00:00Z, in microseconds
    let mut t = 0u64;
    let mut pkts: Vec<(Timestamp, Vec<u8>)> = Vec::new();
    let mut push = |dt_us: u64, f: Frame| {
        t += dt_us;
        pkts.push((Timestamp::from_nanos((base + t) * 1000), f.build()));
    };
    // DNS lookup.
    let query =
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\x01\x00\x01";
    push(0, Frame::udp(client, 53124, dns, 53).payload(query));
    let mut answer = query.to_vec();
    answer[2] = 0x81;
    answer[3] = 0x80;
    answer[7] = 1;
    answer.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc6\x33\x64\x50");
    push(1_800, Frame::udp(dns, 53, client, 53124).payload(&answer));
    // HTTP over TCP: handshake, request, two-segment response, FIN close from both sides.
    let (c, s) = (1_000_000u32, 3_000_000u32);
    let req =
        b"GET /index.html HTTP/1.1\r\nHost: example.org\r\nUser-Agent: flowscope-demo\r\n\r\n";
    let body1 = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 58\r\n\r\n";
    let body2 = b"<html><body><h1>flowscope demo page</h1></body></html>\r\n\r\n";
    let mss = [2, 4, 5, 0xb4];
    push(400, Frame::tcp(client, 49152, server, 80, SYN, c, 0).tcp_options(&mss));
    push(20_000, Frame::tcp(server, 80, client, 49152, SYN_ACK, s, c + 1).tcp_options(&mss));
    push(150, Frame::tcp(client, 49152, server, 80, ACK, c + 1, s + 1));
    push(90, Frame::tcp(client, 49152, server, 80, PSH_ACK, c + 1, s + 1).payload(req));
    let c2 = c + 1 + req.len() as u32;
    push(21_000, Frame::tcp(server, 80, client, 49152, ACK, s + 1, c2));
    push(300, Frame::tcp(server, 80, client, 49152, PSH_ACK, s + 1, c2).payload(body1));
    let s2 = s + 1 + body1.len() as u32;
    push(40, Frame::tcp(server, 80, client, 49152, PSH_ACK, s2, c2).payload(body2));
    let s3 = s2 + body2.len() as u32;
    push(200, Frame::tcp(client, 49152, server, 80, ACK, c2, s3));
    push(5_000, Frame::tcp(client, 49152, server, 80, FIN_ACK, c2, s3));
    push(20_500, Frame::tcp(server, 80, client, 49152, FIN_ACK, s3, c2 + 1));
    push(120, Frame::tcp(client, 49152, server, 80, ACK, c2 + 1, s3 + 1));
    // A refused connection.
    push(30_000, Frame::tcp(client, 49153, server, 8080, SYN, 77_000, 0));
    push(19_000, Frame::tcp(server, 8080, client, 49153, RST_ACK, 0, 77_001));
    // Ping.
    push(10_000, Frame::icmp(client, server, 8, 0, [0x1f, 0x2e, 0, 1]).payload(&[0x61; 32]));
    push(20_100, Frame::icmp(server, client, 0, 0, [0x1f, 0x2e, 0, 1]).payload(&[0x61; 32]));
    // IPv6 on VLAN 42: handshake, a little data each way, then a reset.
    let (c6s, s6s) = (500u32, 9_000u32);
    push(3_000, Frame::tcp(c6, 50000, s6, 443, SYN, c6s, 0).vlan(42));
    push(8_000, Frame::tcp(s6, 443, c6, 50000, SYN_ACK, s6s, c6s + 1).vlan(42));
    push(100, Frame::tcp(c6, 50000, s6, 443, ACK, c6s + 1, s6s + 1).vlan(42));
    push(
        100,
        Frame::tcp(c6, 50000, s6, 443, PSH_ACK, c6s + 1, s6s + 1).vlan(42).payload(&[0x16; 100]),
    );
    push(
        8_200,
        Frame::tcp(s6, 443, c6, 50000, PSH_ACK, s6s + 1, c6s + 101).vlan(42).payload(&[0x17; 200]),
    );
    push(500, Frame::tcp(c6, 50000, s6, 443, RST_ACK, c6s + 101, s6s + 201).vlan(42));
    // ARP: who has 198.51.100.80?
    t += 1_000;
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 10]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[198, 51, 100, 80]);
    arp.resize(60, 0);
    pkts.push((Timestamp::from_nanos((base + t) * 1000), arp));
    write_pcap(LinkType::ETHERNET, 65535, &pkts)
}
