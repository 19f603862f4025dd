//! `flowscope streams`: reassembled TCP payload per flow side, plus an index.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use flowscope::event::FlowSide;
use flowscope::extract::FiveTupleKey;

use crate::options::{FileArgs, TrackOpts};
use crate::run::{run, Event, Source};

/// At most this many stream files are open at once, whatever the number of flows; the
/// least recently written is closed (and reopened for append if it gets more data).
const MAX_OPEN: usize = 64;

/// At most this many gaps are listed per side in the index; beyond it they are counted in
/// `<side>_gaps_unlisted` (and their bytes still in `<side>_missed_bytes`). Without it, a
/// flow that keeps skipping holes at the reassembly cap would grow a list without bound.
const MAX_LISTED_GAPS: usize = 1000;

#[derive(Default)]
struct Side {
    /// The side's file name, set when its first bytes arrive (the file is created then).
    file: Option<String>,
    gaps: Vec<(u64, u64)>,
    /// Gaps past `MAX_LISTED_GAPS`.
    unlisted: u64,
    missed: u64,
}

/// An open stream file: which flow side it holds (serial * 2 + side), its writer, and
/// when it was last written (for closing the least recently written).
struct OpenFile {
    id: u64,
    writer: BufWriter<File>,
    last_use: u64,
}

struct Open {
    flows: HashMap<FiveTupleKey, (u64, [Side; 2])>,
    files: Vec<OpenFile>,
    tick: u64,
}

pub(crate) fn streams(input: &FileArgs, opts: &TrackOpts, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let index_path = dir.join("index.jsonl");
    let mut index = BufWriter::new(
        File::create(&index_path)
            .with_context(|| format!("{}: cannot create", index_path.display()))?,
    );
    let mut st = Open { flows: HashMap::new(), files: Vec::new(), tick: 0 };
    run(Source::Files(input), opts, |e| {
        match e {
            Event::Started { key, serial } => {
                st.flows.insert(key, (serial, [Side::default(), Side::default()]));
            }
            Event::Data { key, side, bytes, .. } => {
                let Some((ordinal, sides)) = st.flows.get_mut(&key) else { return Ok(()) };
                let s = &mut sides[side.index()];
                // The first bytes of a side create its file (truncating any left by an
                // earlier run into the same directory); later reopenings append.
                let first = s.file.is_none();
                let name = s.file.get_or_insert_with(|| {
                    format!(
                        "{:08}-{}.{}",
                        ordinal,
                        key_name(&key),
                        if side == FlowSide::Initiator { "orig" } else { "resp" }
                    )
                });
                st.tick += 1;
                let id = *ordinal * 2 + side.index() as u64;
                write_to(&mut st.files, st.tick, id, dir, name, first, bytes)?;
            }
            Event::Gap { key, side, offset, len } => {
                if let Some((_, sides)) = st.flows.get_mut(&key) {
                    let s = &mut sides[side.index()];
                    if s.gaps.len() < MAX_LISTED_GAPS {
                        s.gaps.push((offset, len));
                    } else {
                        s.unlisted += 1;
                    }
                    s.missed += len;
                }
            }
            Event::Ended(rec, key) => {
                if let Some((_, sides)) = st.flows.remove(&key) {
                    // Only TCP sides get data, so a side with a file is a TCP side.
                    if sides.iter().any(|s| s.file.is_some()) {
                        write!(
                            index,
                            "{{\"uid\":\"{}\",\"id.orig_h\":\"{}\",\"id.orig_p\":{},\"id.resp_h\":\"{}\",\"id.resp_p\":{}",
                            rec.uid, rec.orig.0, rec.orig.1, rec.resp.0, rec.resp.1,
                        )?;
                        for (name, s) in [("orig", &sides[0]), ("resp", &sides[1])] {
                            match &s.file {
                                Some(f) => write!(index, ",\"{name}_file\":\"{f}\"")?,
                                None => write!(index, ",\"{name}_file\":null")?,
                            }
                        }
                        write!(
                            index,
                            ",\"orig_missed_bytes\":{},\"resp_missed_bytes\":{}",
                            sides[0].missed, sides[1].missed
                        )?;
                        for (name, s) in [("orig", &sides[0]), ("resp", &sides[1])] {
                            write!(index, ",\"{name}_gaps\":[")?;
                            for (n, (o, l)) in s.gaps.iter().enumerate() {
                                let sep = if n == 0 { "" } else { "," };
                                write!(index, "{sep}[{o},{l}]")?;
                            }
                            write!(index, "]")?;
                            if s.unlisted > 0 {
                                write!(index, ",\"{name}_gaps_unlisted\":{}", s.unlisted)?;
                            }
                        }
                        writeln!(index, "}}")?;
                    }
                }
            }
            Event::Anomaly(_) | Event::Interim(_) | Event::Tick => {}
        }
        Ok(())
    })?;
    for mut f in st.files.drain(..) {
        f.writer.flush()?;
    }
    index.flush()?;
    Ok(())
}

/// A file-name-safe rendering of the key's endpoints.
fn key_name(k: &FiveTupleKey) -> String {
    let (a, pa) = k.lo();
    let (b, pb) = k.hi();
    format!("{a}.{pa}-{b}.{pb}").replace(':', "_")
}

/// Append `bytes` to flow side `id`'s file `dir/name`, opening it if it is not open
/// (creating it afresh when `create`), and closing the least recently written file
/// first when `MAX_OPEN` are open.
fn write_to(
    files: &mut Vec<OpenFile>,
    tick: u64,
    id: u64,
    dir: &Path,
    name: &str,
    create: bool,
    bytes: &[u8],
) -> Result<()> {
    if let Some(f) = files.iter_mut().find(|f| f.id == id) {
        f.last_use = tick;
        f.writer.write_all(bytes)?;
        return Ok(());
    }
    if files.len() >= MAX_OPEN {
        if let Some(i) = files.iter().enumerate().min_by_key(|(_, f)| f.last_use).map(|(i, _)| i) {
            files.swap_remove(i).writer.flush()?;
        }
    }
    let path = dir.join(name);
    let mut options = OpenOptions::new();
    if create {
        options.write(true).create(true).truncate(true);
    } else {
        options.append(true);
    }
    let file = options.open(&path).with_context(|| format!("{}: cannot write", path.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 15, file);
    writer.write_all(bytes)?;
    files.push(OpenFile { id, writer, last_use: tick });
    Ok(())
}
