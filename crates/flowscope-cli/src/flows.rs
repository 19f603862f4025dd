//! `flowscope flows`: one Zeek-style record per flow, in the order flows end.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::options::TrackOpts;
use crate::record::{write_footer, write_header, write_record, Format, Line};
use crate::run::{run, Event, Source};

/// Write one record per flow, in the order flows end (and interim records, with
/// `--active-timeout`), to `output` or standard output.
pub(crate) fn flows(
    source: Source<'_>,
    opts: &TrackOpts,
    format: Format,
    output: Option<&PathBuf>,
) -> Result<()> {
    let mut out: BufWriter<Box<dyn Write>> = match output {
        Some(p) if p.as_os_str() != "-" => BufWriter::with_capacity(
            1 << 16,
            Box::new(File::create(p).with_context(|| format!("{}: cannot create", p.display()))?),
        ),
        _ => BufWriter::with_capacity(1 << 16, Box::new(io::stdout().lock())),
    };
    // The Zeek header's #open stamp comes from the input, not the wall clock, so output
    // is reproducible: the first record's start time (or the capture's first packet when
    // there are no records), written just before the first record.
    let mut header_written = false;
    let mut line = Line::default();
    let interim = opts.active_timeout.is_some();
    let name = match output {
        Some(p) if p.as_os_str() != "-" => p.display().to_string(),
        _ => "standard output".to_string(),
    };
    let cannot_write = || format!("{name}: cannot write");
    let summary = run(source, opts, |e| {
        let rec = match e {
            Event::Ended(rec, _) | Event::Interim(rec) => rec,
            // Live capture: records reach the output within about a second.
            Event::Tick => return out.flush().with_context(cannot_write),
            _ => return Ok(()),
        };
        if !header_written {
            write_header(&mut out, format, Some(rec.ts), interim).with_context(cannot_write)?;
            header_written = true;
        }
        write_record(&mut out, &mut line, format, rec, interim).with_context(cannot_write)
    })?;
    if !header_written {
        write_header(&mut out, format, summary.read.first_ts, interim)
            .with_context(cannot_write)?;
    }
    write_footer(&mut out, format, summary.read.last_ts).with_context(cannot_write)?;
    out.flush().with_context(cannot_write)?;
    Ok(())
}
