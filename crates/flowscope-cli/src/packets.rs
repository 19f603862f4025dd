//! `flowscope packets`: a per-packet summary, for looking at what the decoder and the
//! extractor make of a capture.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flowscope::extract::{FiveTuple, FlowExtractor, L4Proto};
use flowscope::packet::Transport;
use flowscope::pcap::{PcapError, PcapReader};

/// Print every packet of `files`, in order.
pub(crate) fn run(files: &[PathBuf], quiet: bool) -> Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let extractor = FiveTuple::new();
    let mut index = 0u64;
    for path in files {
        dump_file(path, &extractor, &mut index, &mut out, quiet)?;
    }
    out.flush()?;
    Ok(())
}

fn dump_file(
    path: &Path,
    extractor: &FiveTuple,
    index: &mut u64,
    out: &mut impl Write,
    quiet: bool,
) -> Result<()> {
    let name = path.display();
    let file = File::open(path).with_context(|| format!("{name}: cannot open"))?;
    let mut reader = PcapReader::new(file).map_err(|e| file_error(path, e))?;
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(e) if e.is_truncation() => {
                out.flush()?;
                if !quiet {
                    eprintln!("flowscope: warning: {name}: {e}; the packets before it were read");
                }
                return Ok(());
            }
            Err(e) => {
                out.flush()?;
                return Err(file_error(path, e));
            }
        };
        *index += 1;
        let view = packet.view();
        write!(
            out,
            "{} {} link={} len={}/{} ",
            index,
            packet.ts,
            packet.link.0,
            view.frame.len(),
            view.orig_len
        )?;
        match extractor.extract(&view) {
            Ok(e) => {
                let (src, sport) = e.key.src(e.orientation);
                let (dst, dport) = e.key.dst(e.orientation);
                let proto = match e.l4() {
                    L4Proto::Other => "ip",
                    l4 => l4.as_str(),
                };
                write!(out, "{proto} {src} {sport} > {dst} {dport}")?;
                if let Transport::Tcp(t) = e.headers.transport {
                    write!(out, " flags={:#05x} seq={} ack={}", t.flags.0, t.seq, t.ack)?;
                }
                if let Some(vlan) = e.headers.vlan.outer() {
                    write!(out, " vlan={vlan}")?;
                }
                write!(out, " payload={}", e.headers.payload_wire_len)?;
                if e.headers.truncated {
                    write!(out, " truncated")?;
                }
                writeln!(out, " cid={}", e.key.community_id(0, e.orientation))?;
            }
            Err(u) => writeln!(out, "unmatched {}: {u}", u.as_str())?,
        }
    }
}

/// One line naming the file and, where there is one, the byte offset.
fn file_error(path: &Path, e: PcapError) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", path.display())
}
