//! A streaming pcap/pcapng reader (feature `pcap`): the edge adapter that turns a capture
//! file into [`PacketView`]s.
//!
//! [`PcapReader`] reads any [`std::io::Read`] in bounded chunks, so memory stays constant
//! whatever the file size: one buffer that grows only to the largest record seen, capped
//! by [`PcapReader::with_max_record_len`]. Record and block framing is parsed by the
//! `pcap-parser` crate; this module adds buffering with exact file offsets, timestamp
//! normalisation to nanoseconds, and error reporting.
//!
//! Formats read:
//! - classic pcap in both byte orders, microsecond (`a1b2c3d4`) and nanosecond
//!   (`a1b23c4d`) magic, and the Kuznetzov "modified" variant (`a1b2cd34`);
//! - pcapng with any number of sections (each with its own byte order) and interfaces,
//!   per-interface link type, `if_tsresol` (powers of 10 and of 2) and `if_tsoffset`,
//!   Enhanced and Simple Packet Blocks; other blocks are skipped.
//!
//! Failure behaviour: a file cut in the middle of a record yields every complete record
//! and then [`PcapError::TruncatedRecord`] with the record's byte offset; a record that
//! claims more than the length cap is [`PcapError::RecordTooLarge`] (never an allocation of
//! that size); a block whose lengths contradict each other is [`PcapError::Malformed`].
//! Records whose link type [`crate::packet`] cannot decode are skipped and counted in
//! [`ReaderStats::skipped_link_type`]. The reader never panics on any input.

use std::io::{self, Read};
use std::vec::Vec;

use pcap_parser::pcap::{
    parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header,
};
use pcap_parser::pcapng::{parse_block_be, parse_block_le, Block};

use crate::packet::{LinkType, PacketView};
use crate::time::Timestamp;

/// The default cap on one record's captured length: 262,144 bytes, libpcap's and
/// Wireshark's own maximum snapshot length, so a record they would refuse is refused here
/// too (GRO/TSO super-frames top out at 64 KiB). Raise it with
/// [`PcapReader::with_max_record_len`] for captures made with larger snaplens.
pub const DEFAULT_MAX_RECORD_LEN: usize = 262_144;

const INITIAL_BUFFER: usize = 256 << 10;
const PCAPNG_MAGIC: u32 = 0x0a0d_0d0a;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const EPB_HEADER: usize = 28;
/// pcapng block types: Enhanced Packet Block, Simple Packet Block.
const BLOCK_EPB: u32 = 6;
const BLOCK_SPB: u32 = 3;
const SPB_HEADER: usize = 12;

/// Errors reading a capture file. Every variant that concerns a place in the file carries
/// its byte offset from the start of the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcapError {
    /// The underlying reader failed.
    #[error("read error at byte offset {offset}")]
    Io {
        /// Where reading was when it failed.
        offset: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file (magic {magic:#010x})")]
    BadMagic {
        /// The first four bytes, read big-endian.
        magic: u32,
    },
    /// The file is shorter than its own file header.
    #[error("file ends inside the file header ({len} bytes)")]
    ShortHeader {
        /// Bytes present.
        len: usize,
    },
    /// A pcap or pcapng version this reader does not know.
    #[error("unsupported {format} version {major}.{minor} at byte offset {offset}")]
    UnsupportedVersion {
        /// `pcap` or `pcapng`.
        format: &'static str,
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
        /// Where the header is.
        offset: u64,
    },
    /// The file ends in the middle of a record or block.
    #[error("file truncated: record at byte offset {offset} is cut short ({have} of {need} bytes present)")]
    TruncatedRecord {
        /// Where the incomplete record starts.
        offset: u64,
        /// Bytes the record needs.
        need: u64,
        /// Bytes present.
        have: u64,
    },
    /// A record claims a length above the configured cap.
    #[error("record at byte offset {offset} claims {caplen} bytes, above the limit of {limit}")]
    RecordTooLarge {
        /// Where the record starts.
        offset: u64,
        /// The length it claims.
        caplen: u64,
        /// The cap.
        limit: u64,
    },
    /// A block or record that contradicts itself.
    #[error("malformed {what} at byte offset {offset}")]
    Malformed {
        /// Where the block starts.
        offset: u64,
        /// What was wrong.
        what: &'static str,
    },
}

impl PcapError {
    /// The byte offset the error concerns, when it concerns one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            PcapError::Io { offset, .. }
            | PcapError::UnsupportedVersion { offset, .. }
            | PcapError::TruncatedRecord { offset, .. }
            | PcapError::RecordTooLarge { offset, .. }
            | PcapError::Malformed { offset, .. } => Some(*offset),
            PcapError::BadMagic { .. } => Some(0),
            PcapError::ShortHeader { .. } => Some(0),
        }
    }

    /// True for a file cut short: everything before [`PcapError::offset`] was read.
    pub fn is_truncation(&self) -> bool {
        matches!(self, PcapError::TruncatedRecord { .. })
    }
}

/// What kind of file is being read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaptureFormat {
    /// Classic pcap.
    Pcap {
        /// Fields are big-endian.
        big_endian: bool,
        /// Timestamps carry nanoseconds.
        nanos: bool,
        /// The Kuznetzov "modified" record layout (24-byte record headers).
        modified: bool,
    },
    /// pcapng.
    PcapNg,
}

/// Counters the reader keeps.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Packet records returned.
    pub packets: u64,
    /// Packet records skipped because their link type is not decodable.
    pub skipped_link_type: u64,
    /// pcapng blocks that carried no packet (sections, interfaces, statistics, ...).
    pub other_blocks: u64,
    /// Bytes of the file consumed so far.
    pub bytes: u64,
}

/// One packet record, borrowing the reader's buffer until the next call.
#[derive(Copy, Clone, Debug)]
pub struct PcapPacket<'a> {
    /// Capture time, normalised to nanoseconds since the epoch.
    pub ts: Timestamp,
    /// Link type of the record's interface.
    pub link: LinkType,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire (at least `data.len()`).
    pub orig_len: u32,
    /// pcapng interface index (0 for classic pcap).
    pub interface: u32,
    /// Byte offset of the record in the file.
    pub offset: u64,
}

impl<'a> PcapPacket<'a> {
    /// The record as the core's input type.
    #[inline]
    pub fn view(&self) -> PacketView<'a> {
        PacketView::new(self.ts, self.link, self.data).with_orig_len(self.orig_len)
    }
}

#[derive(Copy, Clone, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp units per second (from `if_tsresol`).
    units_per_sec: u64,
    /// Seconds to add to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

#[derive(Debug)]
enum State {
    Legacy { big_endian: bool, nanos: bool, modified: bool, link: LinkType },
    Ng { big_endian: bool, interfaces: Vec<Interface> },
}

/// A streaming pcap/pcapng reader over any [`Read`].
///
/// Call [`PcapReader::next_packet`] until it returns `Ok(None)` (end of file) or an error.
/// After an error the reader is finished: further calls return `Ok(None)`.
#[derive(Debug)]
pub struct PcapReader<R> {
    src: R,
    // Invariant: buf[start..end] holds the unconsumed bytes; file offset of buf[start] is
    // `offset`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    offset: u64,
    eof: bool,
    done: bool,
    /// The records of the last [`PcapReader::next_batch`] (offsets into `buf`).
    batch: Vec<Record>,
    /// An error met after the first record of a batch, returned by the next call.
    deferred: Option<PcapError>,
    max_record: usize,
    last_ts: Timestamp,
    format: CaptureFormat,
    state: State,
    stats: ReaderStats,
}

impl<R: Read> PcapReader<R> {
    /// Open a capture: reads and checks the file header. The reader keeps its own
    /// buffer (256 KiB, grown only for a longer record) and reads into it in large
    /// chunks, so hand it the `File` itself: a `BufReader` in front only adds a copy.
    pub fn new(src: R) -> Result<Self, PcapError> {
        Self::with_max_record_len(src, DEFAULT_MAX_RECORD_LEN)
    }

    /// Open a capture with a cap on one record's length (see [`DEFAULT_MAX_RECORD_LEN`]).
    pub fn with_max_record_len(src: R, max_record: usize) -> Result<Self, PcapError> {
        let mut r = PcapReader {
            src,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            done: false,
            batch: Vec::new(),
            deferred: None,
            max_record,
            last_ts: Timestamp::ZERO,
            format: CaptureFormat::PcapNg,
            state: State::Ng { big_endian: false, interfaces: Vec::new() },
            stats: ReaderStats::default(),
        };
        r.fill(4)?;
        let head = r.available();
        let Some(magic) = head.first_chunk::<4>() else {
            return Err(PcapError::ShortHeader { len: head.len() });
        };
        let magic_be = u32::from_be_bytes(*magic);
        if magic_be == PCAPNG_MAGIC {
            // Blocks, starting with the section header, are read by next_packet.
            r.format = CaptureFormat::PcapNg;
            return Ok(r);
        }
        let big_endian = match magic_be {
            0xd4c3_b2a1 | 0x4d3c_b2a1 | 0x34cd_b2a1 => false,
            0xa1b2_c3d4 | 0xa1b2_3c4d | 0xa1b2_cd34 => true,
            _ => return Err(PcapError::BadMagic { magic: magic_be }),
        };
        let nanos = matches!(magic_be, 0x4d3c_b2a1 | 0xa1b2_3c4d);
        let modified = matches!(magic_be, 0x34cd_b2a1 | 0xa1b2_cd34);
        if modified && big_endian {
            // pcap-parser reads the modified layout little-endian only.
            return Err(PcapError::BadMagic { magic: magic_be });
        }
        r.fill(24)?;
        let head = r.available();
        if head.len() < 24 {
            return Err(PcapError::ShortHeader { len: head.len() });
        }
        let header = match parse_pcap_header(head) {
            Ok((_, h)) => h,
            Err(_) => return Err(PcapError::BadMagic { magic: magic_be }),
        };
        if header.version_major != 2 {
            return Err(PcapError::UnsupportedVersion {
                format: "pcap",
                major: header.version_major,
                minor: header.version_minor,
                offset: 0,
            });
        }
        // The link type lives in the low 16 bits; the upper bits carry FCS flags.
        let link = LinkType((header.network.0 as u32) & 0xffff);
        r.format = CaptureFormat::Pcap { big_endian, nanos, modified };
        r.state = State::Legacy { big_endian, nanos, modified, link };
        r.consume(24);
        Ok(r)
    }

    /// The file's format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Counters so far.
    pub fn stats(&self) -> ReaderStats {
        let mut s = self.stats;
        s.bytes = self.offset;
        s
    }

    /// The byte offset of the next unread record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next packet record, `Ok(None)` at a clean end of file: a batch of one.
    pub fn next_packet(&mut self) -> Result<Option<PcapPacket<'_>>, PcapError> {
        Ok(self.next_batch(1)?.iter().next())
    }

    /// Up to `max` packet records at once, all borrowing the reader's buffer until the
    /// next call: the next record, and after it those that already sit whole in the
    /// buffer (the batch ends early rather than read more, which would move the buffer).
    /// For callers that hand packets on in groups, such as `FlowDriver::handle_batch`.
    ///
    /// The records, counters and errors are exactly those [`next_packet`](Self::next_packet)
    /// calls would give, in the same order: an empty batch is the end of the file, and an
    /// error met after a batch's first record is returned by the next call. Reuses one
    /// buffer of `max` records, so it does not allocate once that has grown.
    pub fn next_batch(&mut self, max: usize) -> Result<PcapBatch<'_>, PcapError> {
        self.batch.clear();
        if let Some(e) = self.deferred.take() {
            self.done = true;
            return Err(e);
        }
        while !self.done && self.batch.len() < max.max(1) {
            // Past the first record nothing may be read: that could move the buffer
            // under the records already taken.
            if !self.batch.is_empty() && !self.next_is_buffered_packet() {
                break;
            }
            match self.next_record() {
                Ok(Some(rec)) => {
                    // Consumed now: the bytes stay where they are until the next read,
                    // which only the next call does.
                    self.consume(rec.len);
                    self.stats.packets += 1;
                    self.last_ts = rec.ts;
                    self.batch.push(rec);
                }
                Ok(None) => self.done = true,
                Err(e) if self.batch.is_empty() => {
                    self.done = true;
                    return Err(e);
                }
                Err(e) => {
                    self.deferred = Some(e);
                    break;
                }
            }
        }
        Ok(PcapBatch { buf: &self.buf, records: &self.batch })
    }

    /// True when the next record is a packet `next_record` returns without reading
    /// more: whole in the buffer, of a decodable link type (others are skipped, and the
    /// skip would read on).
    fn next_is_buffered_packet(&self) -> bool {
        let avail = self.available();
        match &self.state {
            State::Legacy { big_endian, modified, link, .. } => {
                let Some(hdr) = avail.first_chunk::<16>() else { return false };
                let caplen = word([hdr[8], hdr[9], hdr[10], hdr[11]], *big_endian) as usize;
                let hdr_len = if *modified { 24 } else { 16 };
                link.is_supported() && caplen <= self.max_record && avail.len() >= hdr_len + caplen
            }
            State::Ng { big_endian, interfaces } => {
                let Some(head) = avail.first_chunk::<12>() else { return false };
                let be = *big_endian;
                let len = word([head[4], head[5], head[6], head[7]], be) as usize;
                let interface = match word([head[0], head[1], head[2], head[3]], be) {
                    BLOCK_EPB => word([head[8], head[9], head[10], head[11]], be) as usize,
                    BLOCK_SPB => 0,
                    _ => return false,
                };
                len >= 12
                    && len % 4 == 0
                    && len <= self.max_record.saturating_add(1024)
                    && avail.len() >= len
                    && interfaces.get(interface).is_some_and(|i| i.link.is_supported())
            }
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>, PcapError> {
        loop {
            let found = match &self.state {
                State::Legacy { .. } => self.legacy_record()?,
                State::Ng { .. } => self.ng_block()?,
            };
            match found {
                Step::Eof => return Ok(None),
                Step::Skip(n) => self.consume(n),
                Step::Packet(rec) if !rec.link.is_supported() => {
                    self.stats.skipped_link_type += 1;
                    self.consume(rec.len);
                }
                Step::Packet(rec) => return Ok(Some(rec)),
            }
        }
    }

    fn legacy_record(&mut self) -> Result<Step, PcapError> {
        let State::Legacy { big_endian, nanos, modified, link } = self.state else {
            return Err(PcapError::Malformed { offset: self.offset, what: "reader state" });
        };
        let hdr_len = if modified { 24 } else { 16 };
        self.fill(hdr_len)?;
        let avail = self.available();
        if avail.is_empty() {
            return Ok(Step::Eof);
        }
        let Some(hdr) = avail.first_chunk::<16>().filter(|_| avail.len() >= hdr_len) else {
            return Err(self.truncated(hdr_len, avail.len()));
        };
        let caplen = word([hdr[8], hdr[9], hdr[10], hdr[11]], big_endian) as usize;
        if caplen > self.max_record {
            return Err(PcapError::RecordTooLarge {
                offset: self.offset,
                caplen: caplen as u64,
                limit: self.max_record as u64,
            });
        }
        let total = hdr_len + caplen;
        self.fill(total)?;
        let avail = self.available();
        if avail.len() < total {
            return Err(self.truncated(total, avail.len()));
        }
        let parsed = if modified {
            parse_pcap_frame_modified(avail)
        } else if big_endian {
            parse_pcap_frame_be(avail)
        } else {
            parse_pcap_frame(avail)
        };
        let Ok((_, block)) = parsed else {
            return Err(PcapError::Malformed { offset: self.offset, what: "pcap record" });
        };
        let ts = if nanos {
            Timestamp::from_secs_nanos(block.ts_sec, block.ts_usec)
        } else {
            Timestamp::from_secs_micros(block.ts_sec, block.ts_usec)
        };
        Ok(Step::Packet(Record {
            ts,
            link,
            data_start: self.start + hdr_len,
            data_end: self.start + hdr_len + caplen,
            orig_len: block.origlen,
            interface: 0,
            offset: self.offset,
            len: total,
        }))
    }

    fn ng_block(&mut self) -> Result<Step, PcapError> {
        self.fill(12)?;
        let avail = self.available();
        if avail.is_empty() {
            return Ok(Step::Eof);
        }
        let Some(head) = avail.first_chunk::<12>() else {
            return Err(self.truncated(12, avail.len()));
        };
        let block_type_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let section_be = match &self.state {
            State::Ng { big_endian, .. } => *big_endian,
            State::Legacy { .. } => false,
        };
        let big_endian = if block_type_le == PCAPNG_MAGIC {
            // A section header: its byte-order magic decides for the whole section.
            match u32::from_le_bytes([head[8], head[9], head[10], head[11]]) {
                BYTE_ORDER_MAGIC => false,
                m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
                _ => {
                    return Err(PcapError::Malformed {
                        offset: self.offset,
                        what: "section header byte-order magic",
                    })
                }
            }
        } else {
            section_be
        };
        let block_len = word([head[4], head[5], head[6], head[7]], big_endian) as usize;
        if block_len < 12 || block_len % 4 != 0 {
            return Err(PcapError::Malformed { offset: self.offset, what: "pcapng block length" });
        }
        // Room for the block's own header, trailer and options on top of the packet.
        if block_len > self.max_record.saturating_add(1024) {
            return Err(PcapError::RecordTooLarge {
                offset: self.offset,
                caplen: block_len as u64,
                limit: self.max_record as u64,
            });
        }
        self.fill(block_len)?;
        // Borrow the buffer field alone so the section state can be updated below.
        let avail = self.buf.get(self.start..self.end).unwrap_or(&[]);
        let Some(bytes) = avail.get(..block_len) else {
            return Err(PcapError::TruncatedRecord {
                offset: self.offset,
                need: block_len as u64,
                have: avail.len() as u64,
            });
        };
        let parsed = if big_endian { parse_block_be(bytes) } else { parse_block_le(bytes) };
        let block = match parsed {
            Ok((&[], block)) => block,
            _ => return Err(PcapError::Malformed { offset: self.offset, what: "pcapng block" }),
        };
        let offset = self.offset;
        let start = self.start;
        let State::Ng { big_endian: section_be, interfaces } = &mut self.state else {
            return Err(PcapError::Malformed { offset, what: "reader state" });
        };
        match block {
            Block::SectionHeader(shb) => {
                if shb.major_version != 1 {
                    return Err(PcapError::UnsupportedVersion {
                        format: "pcapng",
                        major: shb.major_version,
                        minor: shb.minor_version,
                        offset,
                    });
                }
                *section_be = big_endian;
                interfaces.clear();
                self.stats.other_blocks += 1;
                Ok(Step::Skip(block_len))
            }
            Block::InterfaceDescription(idb) => {
                let Some(units_per_sec) = ts_units_per_sec(idb.if_tsresol) else {
                    return Err(PcapError::Malformed { offset, what: "interface if_tsresol" });
                };
                if interfaces.len() >= MAX_INTERFACES {
                    return Err(PcapError::Malformed { offset, what: "interface count" });
                }
                interfaces.push(Interface {
                    link: LinkType((idb.linktype.0 as u32) & 0xffff),
                    snaplen: idb.snaplen,
                    units_per_sec,
                    offset_secs: idb.if_tsoffset,
                });
                self.stats.other_blocks += 1;
                Ok(Step::Skip(block_len))
            }
            Block::EnhancedPacket(epb) => {
                let Some(iface) = interfaces.get(epb.if_id as usize).copied() else {
                    return Err(PcapError::Malformed { offset, what: "packet block interface id" });
                };
                let caplen = (epb.caplen as usize).min(epb.data.len());
                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                Ok(Step::Packet(Record {
                    ts: ng_timestamp(units, iface),
                    link: iface.link,
                    data_start: start + EPB_HEADER,
                    data_end: start + EPB_HEADER + caplen,
                    orig_len: epb.origlen,
                    interface: epb.if_id,
                    offset,
                    len: block_len,
                }))
            }
            Block::SimplePacket(spb) => {
                let Some(iface) = interfaces.first().copied() else {
                    return Err(PcapError::Malformed {
                        offset,
                        what: "simple packet block without interface",
                    });
                };
                let mut caplen = (spb.origlen as usize).min(spb.data.len());
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                // Simple Packet Blocks carry no timestamp; the previous packet's is the
                // best estimate and keeps packet time monotonic.
                Ok(Step::Packet(Record {
                    ts: self.last_ts,
                    link: iface.link,
                    data_start: start + SPB_HEADER,
                    data_end: start + SPB_HEADER + caplen,
                    orig_len: spb.origlen,
                    interface: 0,
                    offset,
                    len: block_len,
                }))
            }
            _ => {
                self.stats.other_blocks += 1;
                Ok(Step::Skip(block_len))
            }
        }
    }

    fn truncated(&self, need: usize, have: usize) -> PcapError {
        PcapError::TruncatedRecord { offset: self.offset, need: need as u64, have: have as u64 }
    }

    #[inline]
    fn available(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.offset += n as u64;
    }

    /// Make at least `need` bytes available unless the file ends first.
    fn fill(&mut self, need: usize) -> Result<(), PcapError> {
        if self.end - self.start >= need || self.eof {
            return Ok(());
        }
        if self.start + need > self.buf.len() {
            // Move the unread bytes to the front, and grow only if one record needs it.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if need > self.buf.len() {
                self.buf.resize(need.next_power_of_two(), 0);
            }
        }
        while self.end - self.start < need {
            let Some(spare) = self.buf.get_mut(self.end..) else { break };
            match self.src.read(spare) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(PcapError::Io {
                        offset: self.offset + (self.end - self.start) as u64,
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

/// The most interfaces one pcapng section may declare before the file is called
/// malformed (bounds the interface table).
const MAX_INTERFACES: usize = 65_536;

#[derive(Copy, Clone, Debug)]
struct Record {
    ts: Timestamp,
    link: LinkType,
    data_start: usize,
    data_end: usize,
    orig_len: u32,
    interface: u32,
    offset: u64,
    len: usize,
}

impl Record {
    /// The record as a packet, its data read from the reader's buffer.
    fn packet<'a>(&self, buf: &'a [u8]) -> PcapPacket<'a> {
        let data = buf.get(self.data_start..self.data_end).unwrap_or(&[]);
        PcapPacket {
            ts: self.ts,
            link: self.link,
            data,
            orig_len: self.orig_len.max(data.len() as u32),
            interface: self.interface,
            offset: self.offset,
        }
    }
}

/// A 32-bit field in the file's byte order.
#[inline]
fn word(b: [u8; 4], big_endian: bool) -> u32 {
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// Packet records read together by [`PcapReader::next_batch`], borrowing the reader's
/// buffer until its next call.
#[derive(Copy, Clone, Debug)]
pub struct PcapBatch<'a> {
    buf: &'a [u8],
    records: &'a [Record],
}

impl<'a> PcapBatch<'a> {
    /// How many packets.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True at the end of the file.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The packets, in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = PcapPacket<'a>> + 'a {
        let buf = self.buf;
        self.records.iter().map(move |r| r.packet(buf))
    }
}

#[derive(Copy, Clone, Debug)]
enum Step {
    Eof,
    Skip(usize),
    Packet(Record),
}

/// Units per second for an `if_tsresol` value: 10^v, or 2^(v & 0x7f) with the high bit.
///
/// Written here because pcap-parser 0.17's `build_ts_resolution` rejects every
/// power-of-two resolution (it compares the value *with* the flag bit against 63).
fn ts_units_per_sec(tsresol: u8) -> Option<u64> {
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(u32::from(tsresol))
    } else {
        1u64.checked_shl(u32::from(tsresol & 0x7f)).filter(|&v| v != 0 && (tsresol & 0x7f) < 64)
    }
}

/// An interface timestamp in nanoseconds since the epoch, saturating on absurd values.
fn ng_timestamp(units: u64, iface: Interface) -> Timestamp {
    let per = u128::from(iface.units_per_sec.max(1));
    let ns = u128::from(units) * 1_000_000_000 / per;
    let offset_ns = i128::from(iface.offset_secs) * 1_000_000_000;
    let total = (ns as i128 + offset_ns).clamp(0, i128::from(u64::MAX));
    Timestamp::from_nanos(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::write_pcap;

    type Owned = (Timestamp, Vec<u8>, u32);

    fn read_all(bytes: &[u8]) -> (Vec<Owned>, Option<PcapError>) {
        let mut out = Vec::new();
        let mut r = match PcapReader::new(bytes) {
            Ok(r) => r,
            Err(e) => return (out, Some(e)),
        };
        loop {
            match r.next_packet() {
                Ok(Some(p)) => out.push((p.ts, p.data.to_vec(), p.orig_len)),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn sample() -> Vec<u8> {
        let pkts = vec![
            (Timestamp::from_secs_micros(100, 1), vec![0xaa; 60]),
            (Timestamp::from_secs_micros(101, 999_999), vec![0xbb; 1514]),
        ];
        write_pcap(LinkType::ETHERNET, 65535, &pkts)
    }

    #[test]
    fn reads_classic_pcap() {
        let (pkts, err) = read_all(&sample());
        assert!(err.is_none());
        assert_eq!(pkts.len(), 2);
        assert_eq!(pkts[0].0, Timestamp::from_secs_micros(100, 1));
        assert_eq!(pkts[1].1.len(), 1514);
        assert_eq!(pkts[1].2, 1514);
    }

    #[test]
    fn every_cut_yields_prefix_then_truncation() {
        let file = sample();
        let first_end = 24 + 16 + 60;
        for cut in 0..file.len() {
            let (pkts, err) = read_all(&file[..cut]);
            if cut < 24 {
                assert!(matches!(err, Some(PcapError::ShortHeader { .. })), "cut {cut}: {err:?}");
                continue;
            }
            let complete = usize::from(cut >= first_end);
            assert_eq!(pkts.len(), complete, "cut {cut}");
            if cut == 24 || cut == first_end {
                assert!(err.is_none(), "cut {cut}: clean record boundary");
            } else {
                let e = err.expect("truncation error");
                let want = if cut < first_end { 24 } else { first_end as u64 };
                assert_eq!(e.offset(), Some(want), "cut {cut}");
                assert!(e.is_truncation());
            }
        }
    }

    #[test]
    fn absurd_caplen_is_an_error_not_an_allocation() {
        let mut file = sample();
        // caplen of the first record := 0x7fff_ffff
        file[24 + 8..24 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        let (pkts, err) = read_all(&file);
        assert!(pkts.is_empty());
        assert!(matches!(err, Some(PcapError::RecordTooLarge { offset: 24, .. })), "{err:?}");
    }

    #[test]
    fn bad_magic_and_version() {
        assert!(matches!(
            read_all(b"GIF89a..........................").1,
            Some(PcapError::BadMagic { .. })
        ));
        let mut file = sample();
        file[4] = 1;
        assert!(matches!(read_all(&file).1, Some(PcapError::UnsupportedVersion { major: 1, .. })));
    }

    #[test]
    fn reads_in_tiny_chunks() {
        // A reader that returns one byte per call must give the same result.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match (self.0.split_first(), buf.first_mut()) {
                    (Some((b, rest)), Some(slot)) => {
                        *slot = *b;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let file = sample();
        let mut r = PcapReader::new(OneByte(&file)).unwrap();
        let mut n = 0;
        while let Some(p) = r.next_packet().unwrap() {
            assert!(p.data.len() == 60 || p.data.len() == 1514);
            n += 1;
        }
        assert_eq!(n, 2);
    }

    fn ng_sample() -> Vec<u8> {
        use crate::testkit::{NgInterface, PcapNgWriter};
        let mut w = PcapNgWriter::default();
        w.section(false);
        let ns =
            NgInterface { link: LinkType::ETHERNET, snaplen: 0, tsresol: Some(9), tsoffset: None };
        let us =
            NgInterface { link: LinkType::RAW, snaplen: 0, tsresol: None, tsoffset: Some(100) };
        w.interface(ns);
        w.interface(us);
        w.other();
        w.epb(0, 1_500_000_000_123_456_789, &[1; 61], 61);
        w.epb(1, 2_000_000, &[2; 20], 40);
        w.spb(&[3; 30]);
        // A second section, big-endian, with a power-of-two resolution.
        w.section(true);
        w.interface(NgInterface {
            link: LinkType::NULL,
            snaplen: 16,
            tsresol: Some(0x80 | 10),
            tsoffset: None,
        });
        w.epb(0, 5 << 10, &[4; 8], 8);
        w.spb(&[5; 30]);
        w.out
    }

    #[test]
    fn reads_pcapng_sections_interfaces_and_resolutions() {
        let (pkts, err) = read_all(&ng_sample());
        assert!(err.is_none(), "{err:?}");
        let ts: Vec<u64> = pkts.iter().map(|p| p.0.as_nanos()).collect();
        assert_eq!(
            ts,
            [
                1_500_000_000_123_456_789,
                102_000_000_000,
                102_000_000_000,
                5_000_000_000,
                5_000_000_000
            ]
        );
        let lens: Vec<(usize, u32)> = pkts.iter().map(|p| (p.1.len(), p.2)).collect();
        // The last SPB is cut to the interface's snaplen of 16.
        assert_eq!(lens, [(61, 61), (20, 40), (30, 30), (8, 8), (16, 30)]);
        assert_eq!(pkts[4].1, vec![5; 16]);
    }

    #[test]
    fn every_pcapng_cut_is_a_clean_end_or_a_truncation() {
        let file = ng_sample();
        let (full, _) = read_all(&file);
        for cut in 0..file.len() {
            let (pkts, err) = read_all(&file[..cut]);
            assert!(pkts.len() <= full.len());
            assert_eq!(pkts[..], full[..pkts.len()], "cut {cut}");
            if let Some(e) = err {
                assert!(
                    e.is_truncation() || matches!(e, PcapError::ShortHeader { .. }),
                    "cut {cut}: {e}"
                );
            }
        }
    }

    #[test]
    fn pcapng_lies_are_errors() {
        let file = ng_sample();
        // The first IDB starts at 28 (after the 28-byte SHB). Make its two length fields
        // disagree.
        let mut bad = file.clone();
        let len2_at = 28 + u32::from_le_bytes(bad[32..36].try_into().unwrap()) as usize - 4;
        bad[len2_at] ^= 0x10;
        assert!(matches!(read_all(&bad).1, Some(PcapError::Malformed { offset: 28, .. })));
        // A block length that is not a multiple of 4.
        let mut bad = file.clone();
        bad[32] += 1;
        assert!(matches!(read_all(&bad).1, Some(PcapError::Malformed { offset: 28, .. })));
        // A huge block length.
        let mut bad = file.clone();
        bad[32..36].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        assert!(matches!(read_all(&bad).1, Some(PcapError::RecordTooLarge { offset: 28, .. })));
        // A block length below the 12 bytes every block has.
        let mut bad = file.clone();
        bad[32..36].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(read_all(&bad).1, Some(PcapError::Malformed { offset: 28, .. })));
        // An EPB whose captured length runs past its own block.
        let mut w = crate::testkit::PcapNgWriter::default();
        w.section(false);
        w.interface(crate::testkit::NgInterface {
            link: LinkType::RAW,
            snaplen: 0,
            tsresol: None,
            tsoffset: None,
        });
        let epb_at = w.out.len();
        w.epb(0, 0, &[0x45; 20], 20);
        let mut bad = w.out.clone();
        bad[epb_at + 20..epb_at + 24].copy_from_slice(&400u32.to_le_bytes());
        let (pkts, err) = read_all(&bad);
        assert!(pkts.is_empty());
        assert!(
            matches!(err, Some(PcapError::Malformed { offset, .. }) if offset == epb_at as u64),
            "{err:?}"
        );
        // A packet for an interface that was never declared.
        let mut w = crate::testkit::PcapNgWriter::default();
        w.section(false);
        w.epb(3, 0, &[0; 4], 4);
        assert!(matches!(read_all(&w.out).1, Some(PcapError::Malformed { offset: 28, .. })));
    }

    #[test]
    fn a_batch_stops_at_a_bad_record_and_the_next_call_reports_it() {
        // Two good packets, then an EPB whose captured length runs past its block: the
        // bad block is whole in the buffer, so the batch reaches it and must hold its
        // error back until the packets before it were handed out.
        let mut w = crate::testkit::PcapNgWriter::default();
        w.section(false);
        let raw = crate::testkit::NgInterface {
            link: LinkType::RAW,
            snaplen: 0,
            tsresol: None,
            tsoffset: None,
        };
        w.interface(raw);
        w.epb(0, 1, &[0x45; 20], 20);
        w.epb(0, 2, &[0x45; 24], 24);
        let bad_at = w.out.len();
        w.epb(0, 3, &[0x45; 20], 20);
        w.epb(0, 4, &[0x45; 20], 20);
        w.out[bad_at + 20..bad_at + 24].copy_from_slice(&400u32.to_le_bytes());
        let mut r = PcapReader::new(&w.out[..]).unwrap();
        let batch = r.next_batch(8).unwrap();
        let got: Vec<(u64, usize)> =
            batch.iter().map(|p| (p.ts.as_nanos(), p.data.len())).collect();
        assert_eq!(got, [(1_000, 20), (2_000, 24)]);
        let err = r.next_batch(8).unwrap_err();
        assert!(
            matches!(err, PcapError::Malformed { offset, .. } if offset == bad_at as u64),
            "{err}"
        );
        assert!(r.next_batch(8).unwrap().is_empty());
        assert_eq!(r.stats().packets, 2);
        // Through `next_packet` after the batch, the same error.
        let mut r = PcapReader::new(&w.out[..]).unwrap();
        assert_eq!(r.next_batch(8).unwrap().len(), 2);
        assert!(matches!(r.next_packet(), Err(PcapError::Malformed { .. })));
        assert!(matches!(r.next_packet(), Ok(None)));
    }

    #[test]
    fn batches_mix_with_single_records() {
        let file = ng_sample();
        let (full, _) = read_all(&file);
        let mut r = PcapReader::new(&file[..]).unwrap();
        let mut got: Vec<Owned> = Vec::new();
        let first = r.next_packet().unwrap().unwrap();
        got.push((first.ts, first.data.to_vec(), first.orig_len));
        loop {
            let batch = r.next_batch(2).unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.iter().map(|p| (p.ts, p.data.to_vec(), p.orig_len)));
            if let Some(p) = r.next_packet().unwrap() {
                got.push((p.ts, p.data.to_vec(), p.orig_len));
            }
        }
        assert_eq!(got, full);
        assert_eq!(r.stats().packets, full.len() as u64);
        assert_eq!(r.offset(), file.len() as u64);
    }

    #[test]
    fn tsresol_units() {
        assert_eq!(ts_units_per_sec(6), Some(1_000_000));
        assert_eq!(ts_units_per_sec(9), Some(1_000_000_000));
        assert_eq!(ts_units_per_sec(0x80 | 20), Some(1 << 20));
        assert_eq!(ts_units_per_sec(20), None);
        let iface = Interface {
            link: LinkType::ETHERNET,
            snaplen: 0,
            units_per_sec: 1 << 20,
            offset_secs: 10,
        };
        assert_eq!(ng_timestamp(3 << 20, iface), Timestamp::from_nanos(13_000_000_000));
    }
}
