//! Reading captures: files in order as one capture, progress on a terminal, and the
//! error policy (a cut file warns and continues; anything else is a one-line error).

use std::cell::Cell;
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result};
use flowscope::packet::LinkType;
use flowscope::pcap::{PcapBatch, PcapError, PcapPacket, PcapReader};
use indicatif::{ProgressBar, ProgressStyle};

use crate::bpf::Program;
use crate::options::FileArgs;

/// Totals over all inputs, for `stats` and the progress line.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReadTotals {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) skipped_link_type: u64,
    /// Packets `--bpf` left out (counted in `packets` and `bytes`, never tracked).
    pub(crate) filtered: u64,
    pub(crate) first_ts: Option<flowscope::Timestamp>,
    pub(crate) last_ts: Option<flowscope::Timestamp>,
}

/// Whether reading may draw a progress bar (still only on a terminal, for long inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Draw one when stderr is a terminal.
    Allowed,
    /// Never (the command writes to the terminal per packet).
    Never,
}

/// The command-line name for standard input, as tcpdump's and tshark's `-r -`.
const STDIN: &str = "-";

/// Whether `path` names standard input.
fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == STDIN
}

/// An input as messages name it: the path, or `<stdin>`.
fn input_name(path: &Path) -> std::borrow::Cow<'_, str> {
    if is_stdin(path) {
        "<stdin>".into()
    } else {
        path.to_string_lossy()
    }
}

/// One input's bytes as read from the file or standard input, counted as they come
/// (the progress bar measures inputs by their size on disk, compressed or not).
struct Raw {
    from: RawFrom,
    consumed: Rc<Cell<u64>>,
}

enum RawFrom {
    File(File),
    Stdin(std::io::Stdin),
}

impl Read for Raw {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.from {
            RawFrom::File(f) => f.read(buf)?,
            RawFrom::Stdin(s) => s.read(buf)?,
        };
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

/// The first bytes, read to recognise the format, then the rest.
type Peeked = io::Chain<io::Cursor<Vec<u8>>, Raw>;

/// A capture's bytes: as read, or decompressed when they start with gzip's magic
/// (a `.pcap.gz` or `.pcapng.gz` reads as the capture inside, as in tshark).
enum Source {
    Plain(Peeked),
    Gzip {
        decoder: flate2::read::MultiGzDecoder<Peeked>,
        /// Set when the compressed stream stopped short: the decoder's error becomes the
        /// end of input, so the records before the cut are read and a warning follows.
        cut: Rc<Cell<bool>>,
    },
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Plain(p) => p.read(buf),
            Source::Gzip { decoder, cut } => match decoder.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    cut.set(true);
                    Ok(0)
                }
                other => other,
            },
        }
    }
}

/// An input opened for reading.
struct Opened {
    source: Source,
    /// How messages name it: the path (or `<stdin>`), marked when decompressed, since
    /// the reader's byte offsets then count decompressed bytes.
    label: String,
    /// Bytes read from the file so far.
    consumed: Rc<Cell<u64>>,
    /// Whether a compressed stream was cut short.
    cut: Rc<Cell<bool>>,
}

fn open(path: &Path) -> Result<Opened> {
    let name = input_name(path);
    let from = if is_stdin(path) {
        RawFrom::Stdin(io::stdin())
    } else {
        RawFrom::File(File::open(path).with_context(|| format!("{name}: cannot open"))?)
    };
    let consumed = Rc::new(Cell::new(0));
    let mut raw = Raw { from, consumed: Rc::clone(&consumed) };
    let mut head = Vec::with_capacity(2);
    (&mut raw).take(2).read_to_end(&mut head).with_context(|| format!("{name}: cannot read"))?;
    let gzip = head == [0x1f, 0x8b];
    let peeked = io::Cursor::new(head).chain(raw);
    let cut = Rc::new(Cell::new(false));
    let (source, label) = if gzip {
        let decoder = flate2::read::MultiGzDecoder::new(peeked);
        (Source::Gzip { decoder, cut: Rc::clone(&cut) }, format!("{name} (decompressed)"))
    } else {
        (Source::Plain(peeked), name.into_owned())
    };
    Ok(Opened { source, label, consumed, cut })
}

/// Records read at a time: the driver takes them in groups (`FlowDriver::handle_batch`).
pub(crate) const READ_BATCH: usize = 64;
// A batch's filter results are one bit a packet in a `u64`.
const _: () = assert!(READ_BATCH <= 64);

/// A `--bpf` filter over capture files, as `tcpdump -r FILE EXPR` applies one: libpcap
/// compiles the expression for each link type the input holds (pcapng interfaces may
/// differ), as it would for tcpdump, and [`crate::bpf`] runs the program on each packet.
/// libpcap is the reference for what the syntax means, so it compiles it rather than a
/// filter language of our own.
struct Filter {
    expr: String,
    /// Compiled programs, one per link type and byte order met (a handful at most).
    programs: Vec<(Compiled, Program)>,
}

impl Filter {
    fn new(expr: &str) -> Self {
        Filter { expr: expr.to_owned(), programs: Vec::new() }
    }

    /// Whether `packet` matches (`len`, `greater` and `less` test its length on the
    /// wire, as in tcpdump).
    fn keeps(&mut self, packet: &PcapPacket<'_>) -> Result<bool> {
        let key = Compiled::of(packet);
        let at = match self.programs.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                let program = self.compile(key)?;
                self.programs.push((key, program));
                self.programs.len() - 1
            }
        };
        Ok(self.programs[at].1.matches(packet.data, packet.orig_len))
    }

    fn compile(&self, key: Compiled) -> Result<Program> {
        let what = || format!("capture filter {:?} (link type {})", self.expr, key.link.0);
        let compiled = compile(&self.expr, key).with_context(what)?;
        Program::from_pcap(&compiled).with_context(what)
    }
}

/// What a program is compiled for: a link type, and the byte order of the capturing
/// host where the link header is written in it (BSD loopback's address family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Compiled {
    pub(crate) link: LinkType,
    pub(crate) big_endian: bool,
}

impl Compiled {
    /// For `packet`. A LINKTYPE_NULL header's family number is in the capturing host's
    /// order; as the decoder does, the reading that gives a small number is taken to be
    /// the right one (libpcap goes by the file's byte order, which a pcapng section
    /// does not tie to the host's, and which flowscope's reader does not hand out per
    /// packet).
    pub(crate) fn of(packet: &PcapPacket<'_>) -> Self {
        let big_endian = if packet.link == LinkType::NULL {
            packet.data.first_chunk::<4>().is_some_and(|h| u32::from_le_bytes(*h) > 0xffff)
        } else {
            cfg!(target_endian = "big")
        };
        Compiled { link: packet.link, big_endian }
    }
}

/// `expr` compiled by libpcap for captures of link type `link`.
pub(crate) fn compile(
    expr: &str,
    Compiled { link, big_endian }: Compiled,
) -> Result<pcap::BpfProgram> {
    if let Some(cap) = savefile_handle(link, big_endian) {
        return Ok(cap.compile(expr, true)?);
    }
    // libpcap compiles for a DLT value, which equals the LINKTYPE value in files for
    // every link type flowscope decodes but raw IP (LINKTYPE_RAW 101; DLT_RAW 12 or 14
    // by platform, so it is asked for by name).
    let dlt = if link == LinkType::RAW {
        pcap::Linktype::from_name("RAW")?
    } else {
        pcap::Linktype(link.0 as i32)
    };
    Ok(pcap::Capture::dead(dlt)?.compile(expr, true)?)
}

/// A libpcap handle on an empty capture file of link type `link`, to compile filters
/// against; `None` when no such file could be written.
///
/// libpcap compiles some filters differently for capture files than for other handles,
/// and these are what tcpdump gives for `-r FILE`: on BSD loopback captures (LINKTYPE
/// NULL and LOOP) `ip6` matches the AF_INET6 value of every BSD, since a file may come
/// from any of them, where a handle made with `pcap_open_dead` matches only the local
/// system's (and so nothing in a capture from macOS, on Linux). The file is written in
/// `big_endian` byte order, which is what libpcap goes by for a NULL header's family
/// number (swapping its constants when the file's order is not the host's).
fn savefile_handle(link: LinkType, big_endian: bool) -> Option<pcap::Capture<pcap::Offline>> {
    let w32 = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let w16 = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&w32(0xa1b2_c3d4));
    header.extend_from_slice(&w16(2));
    header.extend_from_slice(&w16(4));
    header.extend_from_slice(&[0; 8]); // time zone, timestamp accuracy
    header.extend_from_slice(&w32(262_144)); // snapshot length
    header.extend_from_slice(&w32(link.0));
    let dir = std::env::temp_dir();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..4u32 {
        let path = dir.join(format!(
            "flowscope-bpf-{}-{}-{}.pcap",
            std::process::id(),
            link.0,
            stamp.wrapping_add(attempt)
        ));
        // `create_new`: never through a file or link someone else put there.
        let Ok(mut file) = File::options().write(true).create_new(true).open(&path) else {
            continue;
        };
        let written = std::io::Write::write_all(&mut file, &header);
        drop(file);
        let cap = written.ok().and_then(|()| pcap::Capture::from_file(&path).ok());
        let _ = std::fs::remove_file(&path);
        return cap;
    }
    None
}

/// A batch as read, and which of its packets passed the filter.
pub(crate) struct Kept<'a> {
    batch: PcapBatch<'a>,
    /// Bit `i` set: packet `i` passed (`READ_BATCH` is at most 64).
    mask: u64,
}

impl<'a> Kept<'a> {
    /// The packets that passed, in file order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = PcapPacket<'a>> + 'a {
        self.numbered().map(|(_, p)| p)
    }

    /// The packets that passed, each with its place in the batch.
    fn numbered(&self) -> impl Iterator<Item = (usize, PcapPacket<'a>)> + 'a {
        // The mask shifted along the walk, rather than bit `i` tested for each.
        let mut rest = self.mask;
        self.batch.iter().enumerate().filter(move |_| {
            let passed = rest & 1 != 0;
            rest >>= 1;
            passed
        })
    }

    /// The whole batch, when every packet passed (no filter, or one that kept them all).
    pub(crate) fn all(&self) -> Option<&PcapBatch<'a>> {
        (self.mask.count_ones() as usize == self.batch.len()).then_some(&self.batch)
    }
}

/// Call `each` for every packet of the input that passes its filter, in order, with
/// the packet's number in the input (from 1, filtered packets included, as tshark
/// numbers frames). A file cut short mid-record ends with a warning (unless `quiet`);
/// any other read problem is an error naming the file and, where there is one, the byte
/// offset.
pub(crate) fn for_each_packet(
    input: &FileArgs,
    quiet: bool,
    show: Progress,
    mut each: impl FnMut(u64, &PcapPacket<'_>) -> Result<()>,
) -> Result<ReadTotals> {
    let mut number = 0u64;
    for_each_batch(input, quiet, show, |kept| {
        let base = number;
        number += kept.batch.len() as u64;
        kept.numbered().try_for_each(|(i, p)| each(base + i as u64 + 1, &p))
    })
}

/// [`for_each_packet`], the packets handed over up to [`READ_BATCH`] at a time (as
/// many as the reader holds whole; never none, though a filter may keep none of them).
pub(crate) fn for_each_batch(
    input: &FileArgs,
    quiet: bool,
    show: Progress,
    mut each: impl FnMut(&Kept<'_>) -> Result<()>,
) -> Result<ReadTotals> {
    let files = &input.files[..];
    let mut filter = input.bpf.as_deref().map(Filter::new);
    if files.iter().filter(|f| is_stdin(f)).count() > 1 {
        anyhow::bail!("standard input (`-`) can be read only once");
    }
    let mut totals = ReadTotals::default();
    // Standard input's length is unknown; the bar shows the files' share.
    let total_bytes: u64 = files
        .iter()
        .filter(|f| !is_stdin(f))
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress(total_bytes, quiet || show == Progress::Never);
    let mut done_bytes = 0u64;
    for path in files {
        let Opened { source, label, consumed, cut } = open(path)?;
        // No BufReader: PcapReader reads into its own 256 KiB buffer, and a second buffer
        // in front of it only added a copy (min of 8 runs on 823 MB: 0.73 s -> 0.66 s).
        let mut reader = PcapReader::new(source).map_err(|e| file_error(&label, e))?;
        let warn = |what: &dyn std::fmt::Display| {
            if quiet {
                return;
            }
            let line =
                format!("flowscope: warning: {label}: {what}; the packets before it were read");
            match &bar {
                Some(b) => b.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            }
        };
        let mut next_progress = 0u64;
        loop {
            match reader.next_batch(READ_BATCH) {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => {
                    for p in batch.iter() {
                        totals.packets += 1;
                        totals.bytes += u64::from(p.orig_len);
                        totals.first_ts = Some(totals.first_ts.map_or(p.ts, |t| t.min(p.ts)));
                        totals.last_ts = Some(totals.last_ts.map_or(p.ts, |t| t.max(p.ts)));
                    }
                    let mut mask = u64::MAX.checked_shr(64 - batch.len() as u32).unwrap_or(0);
                    if let Some(f) = filter.as_mut() {
                        for (i, p) in batch.iter().enumerate() {
                            if !f.keeps(&p)? {
                                mask &= !(1 << i);
                                totals.filtered += 1;
                            }
                        }
                    }
                    each(&Kept { batch, mask })?;
                    if totals.packets >= next_progress {
                        next_progress = totals.packets + 65536;
                        if let Some(b) = &bar {
                            b.set_position(done_bytes + consumed.get());
                        }
                    }
                }
                Err(e) if e.is_truncation() => {
                    warn(&e);
                    cut.set(false);
                    break;
                }
                Err(e) => return Err(file_error(&label, e)),
            }
        }
        if cut.get() {
            // Cut between two records: the capture inside reads as complete, the
            // compressed stream says otherwise.
            warn(&"the compressed stream ends early");
        }
        totals.skipped_link_type += reader.stats().skipped_link_type;
        done_bytes += consumed.get();
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(totals)
}

/// A progress bar on stderr, only when stderr is a terminal (never in pipes or logs).
fn progress(total: u64, quiet: bool) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() || total < (64 << 20) {
        return None;
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_bar}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// One line naming the input and, where there is one, the byte offset.
fn file_error(label: &str, e: PcapError) -> anyhow::Error {
    // The cause too (a read error's: "invalid gzip header", "Is a directory").
    match std::error::Error::source(&e) {
        Some(cause) => anyhow::anyhow!("{label}: {e}: {cause}"),
        None => anyhow::anyhow!("{label}: {e}"),
    }
}
