//! `flowscope`: read pcap/pcapng captures and report what flowscope sees in them.
//!
//! This file parses arguments and dispatches; each command lives in its own module.

mod packets;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, documented in `--help`.
const EXIT_OK: u8 = 0;
const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "flowscope",
    version,
    about = "Passive flow tracking for pcap/pcapng captures",
    after_help = "Exit codes:\n  0  success (also: a capture cut short mid-record, after a warning; a closed output pipe)\n  1  an input could not be read: missing, not a capture, or corrupt (the message names the file and byte offset)\n  2  bad command-line usage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print one line per packet: time, link type, lengths, and the flow key with the
    /// packet's direction, or why it has none.
    Packets {
        /// Capture files, read in order as one capture.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
        Command::Packets { files, quiet } => packets::run(&files, quiet),
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

/// A closed output pipe (`flowscope ... | head`) is a normal way to stop.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
