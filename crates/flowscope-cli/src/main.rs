//! `flowscope`: read pcap/pcapng captures and report what flowscope sees in them.
//!
//! This file parses arguments and dispatches; each command lives in its own module.

mod bpf;
mod flows;
mod input;
mod live;
mod metrics;
mod options;
mod packets;
mod record;
mod run;
mod stats;
mod streams;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use run::Source;

/// Exit codes, documented in `--help`.
const EXIT_OK: u8 = 0;
const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "flowscope",
    version,
    about = "Passive flow tracking for pcap/pcapng captures",
    after_help = "Exit codes:\n  0  success (also: a capture cut short mid-record, after a warning; a closed output pipe)\n  1  an input could not be read: missing, not a capture, or corrupt (the message names the file and byte offset); or an output could not be written\n  2  bad command-line usage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write one record per flow (Zeek conn.log fields), in the order flows end.
    Flows {
        #[command(flatten)]
        input: options::FileArgs,
        #[command(flatten)]
        opts: options::TrackOpts,
        #[command(flatten)]
        out: options::OutputArgs,
    },
    /// Write each TCP flow's reassembled payload, one file per side, and DIR/index.jsonl.
    Streams {
        #[command(flatten)]
        input: options::FileArgs,
        #[command(flatten)]
        opts: options::TrackOpts,
        /// Directory for the stream files and the index.
        #[arg(short, long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print a summary: packets, flows by protocol, end reason and state, anomalies, top
    /// talkers, time span, processing speed.
    Stats {
        #[command(flatten)]
        input: options::FileArgs,
        #[command(flatten)]
        opts: options::TrackOpts,
    },
    /// Capture from a network interface and write flow records as flows end, until
    /// SIGINT or SIGTERM (then every flow still live is ended and written).
    Live {
        #[command(flatten)]
        live: live::LiveOpts,
        #[command(flatten)]
        opts: options::TrackOpts,
        #[command(flatten)]
        out: options::OutputArgs,
    },
    /// Print one line per packet: time, link type, lengths, and the flow key with the
    /// packet's direction, or why it has none.
    Packets {
        #[command(flatten)]
        input: options::FileArgs,
        /// Silence warnings (such as a capture cut short).
        #[arg(short, long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Packets { input, quiet } => packets::run(&input, quiet),
        Command::Flows { input, opts, out } => {
            flows::flows(Source::Files(&input), &opts, out.format, out.output.as_ref())
        }
        Command::Streams { input, opts, dir } => streams::streams(&input, &opts, &dir),
        Command::Stats { input, opts } => stats::stats(&input, &opts),
        Command::Live { live, opts, out } => {
            live_flows(&live, &opts, out.format, out.output.as_ref())
        }
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            let _ = io::stdout().flush();
            eprintln!("flowscope: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// `flowscope live`: SIGINT and SIGTERM stop the capture, and the flows still live are
/// ended and written before exit; a second SIGINT exits at once.
fn live_flows(
    live: &live::LiveOpts,
    opts: &options::TrackOpts,
    format: record::Format,
    output: Option<&PathBuf>,
) -> anyhow::Result<()> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Exit at once on a signal that arrives after the first.
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    flows::flows(Source::Live(live, &stop), opts, format, output)
}

/// A closed output pipe (`flowscope ... | head`) is a normal way to stop.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
