//! `flowscope streams`: reassembled TCP payload per flow side, plus an index.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flowscope::event::FlowSide;
use flowscope::extract::FiveTupleKey;

use crate::options::TrackOpts;
use crate::run::{run, Event};

/// At most this many stream files are open at once, whatever the number of flows; the
/// least recently written is closed (and reopened for append if it gets more data).
const MAX_OPEN: usize = 64;

#[derive(Default)]
struct Side {
    file: Option<String>,
    gaps: Vec<(u64, u64)>,
    missed: u64,
}

struct Open {
    flows: HashMap<FiveTupleKey, (u64, [Side; 2])>,
    files: Vec<(String, BufWriter<File>, u64)>, // name, writer, last use
    tick: u64,
}

pub(crate) fn streams(opts: &TrackOpts, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let index_path = dir.join("index.jsonl");
    let mut index = BufWriter::new(
        File::create(&index_path)
            .with_context(|| format!("{}: cannot create", index_path.display()))?,
    );
    let mut st = Open { flows: HashMap::new(), files: Vec::new(), tick: 0 };
    run(opts, |e| {
        match e {
            Event::Started { key, ordinal } => {
                st.flows.insert(key, (ordinal, [Side::default(), Side::default()]));
            }
            Event::Data { key, side, bytes, .. } => {
                let Some((ordinal, sides)) = st.flows.get_mut(&key) else { return Ok(()) };
                let s = &mut sides[idx(side)];
                let name = s
                    .file
                    .get_or_insert_with(|| {
                        format!(
                            "{:08}-{}.{}",
                            ordinal,
                            key_name(&key),
                            if side == FlowSide::Initiator { "orig" } else { "resp" }
                        )
                    })
                    .clone();
                st.tick += 1;
                write_to(&mut st.files, st.tick, dir, &name, bytes)?;
            }
            Event::Gap { key, side, offset, len } => {
                if let Some((_, sides)) = st.flows.get_mut(&key) {
                    let s = &mut sides[idx(side)];
                    s.gaps.push((offset, len));
                    s.missed += len;
                }
            }
            Event::Ended(rec, key) => {
                if let Some((_, sides)) = st.flows.remove(&key) {
                    if rec.proto == "tcp" && (sides[0].file.is_some() || sides[1].file.is_some()) {
                        let f = |s: &Side| {
                            s.file.as_ref().map_or("null".into(), |n| format!("\"{n}\""))
                        };
                        let g = |s: &Side| {
                            format!(
                                "[{}]",
                                s.gaps
                                    .iter()
                                    .map(|(o, l)| format!("[{o},{l}]"))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            )
                        };
                        writeln!(
                            index,
                            "{{\"uid\":\"{}\",\"id.orig_h\":\"{}\",\"id.orig_p\":{},\"id.resp_h\":\"{}\",\"id.resp_p\":{},\"orig_file\":{},\"resp_file\":{},\"orig_missed_bytes\":{},\"resp_missed_bytes\":{},\"orig_gaps\":{},\"resp_gaps\":{}}}",
                            rec.uid, rec.orig.0, rec.orig.1, rec.resp.0, rec.resp.1,
                            f(&sides[0]), f(&sides[1]), sides[0].missed, sides[1].missed, g(&sides[0]), g(&sides[1])
                        )?;
                    }
                }
            }
            Event::Anomaly(_) => {}
        }
        Ok(())
    })?;
    for (_, mut w, _) in st.files.drain(..) {
        w.flush()?;
    }
    index.flush()?;
    Ok(())
}

fn idx(side: FlowSide) -> usize {
    match side {
        FlowSide::Initiator => 0,
        FlowSide::Responder => 1,
    }
}

/// A file-name-safe rendering of the key's endpoints.
fn key_name(k: &FiveTupleKey) -> String {
    let (a, pa) = k.lo();
    let (b, pb) = k.hi();
    format!("{a}.{pa}-{b}.{pb}").replace(':', "_")
}

fn write_to(
    files: &mut Vec<(String, BufWriter<File>, u64)>,
    tick: u64,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    if let Some(f) = files.iter_mut().find(|f| f.0 == name) {
        f.2 = tick;
        f.1.write_all(bytes)?;
        return Ok(());
    }
    if files.len() >= MAX_OPEN {
        // Close the least recently written file.
        if let Some(i) = files.iter().enumerate().min_by_key(|(_, f)| f.2).map(|(i, _)| i) {
            let (_, mut w, _) = files.swap_remove(i);
            w.flush()?;
        }
    }
    let path: PathBuf = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 15, file);
    w.write_all(bytes)?;
    files.push((name.to_string(), w, tick));
    Ok(())
}
