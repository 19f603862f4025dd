//! `flowscope flows`: one Zeek-style record per flow, in the order flows end.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::options::TrackOpts;
use crate::record::{write_footer, write_header, write_record, Format};
use crate::run::{run, Event};

pub(crate) fn flows(opts: &TrackOpts, format: Format, output: Option<&PathBuf>) -> Result<()> {
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
    let summary = run(opts, |e| {
        if let Event::Ended(rec, _) = e {
            if !header_written {
                write_header(&mut out, format, Some(rec.ts))?;
                header_written = true;
            }
            write_record(&mut out, format, rec)?;
        }
        Ok(())
    })?;
    if !header_written {
        write_header(&mut out, format, summary.read.first_ts)?;
    }
    write_footer(&mut out, format, summary.read.last_ts)?;
    out.flush()?;
    Ok(())
}
