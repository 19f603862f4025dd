//! Options shared by the commands that track flows.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use flowscope::defrag::DefragConfig;
use flowscope::packet::TunnelConfig;
use flowscope::tracker::{FlowTrackerConfig, OverflowPolicy};

#[derive(Debug, Args)]
pub(crate) struct TrackOpts {
    /// Idle timeout of TCP flows past their handshake, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub(crate) tcp_idle: f64,
    /// How long an unanswered TCP connection attempt is kept after its first packet, in
    /// seconds (Zeek's `tcp_attempt_delay` is 5).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub(crate) tcp_attempt_idle: f64,
    /// Idle timeout of UDP flows, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub(crate) udp_idle: f64,
    /// Idle timeout of ICMP and other flows, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub(crate) other_idle: f64,
    /// Most live flows; the least recently active is evicted beyond it.
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    pub(crate) max_flows: usize,
    /// Most out-of-order bytes buffered per flow side.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub(crate) max_buffer: usize,
    /// What reassembly does at a buffer cap.
    #[arg(long, value_enum, default_value_t = Policy::SlidingWindow)]
    pub(crate) overflow_policy: Policy,
    /// Keep this many of each stream side's most recently delivered bytes and count
    /// retransmissions whose bytes differ from them as inconsistent (shown by `stats`).
    /// 0, the default, keeps none; segments overlapping bytes still buffered out of
    /// order are compared either way.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub(crate) check_retransmits: usize,
    /// Make the outer VLAN id part of the flow key.
    #[arg(long)]
    pub(crate) vlan_in_key: bool,
    /// How many nested tunnels (VXLAN, Geneve, GRE, ERSPAN, GTP-U, Teredo, AYIYA,
    /// IP-in-IP) to look into; the flows inside are tracked too and name their tunnel's
    /// uid in `tunnel_parents`. 0 tracks outer headers only.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(crate) tunnel_depth: u8,
    /// A UDP port that carries VXLAN (repeatable, up to 4; replaces the default 4789).
    #[arg(long = "vxlan-port", value_name = "PORT")]
    pub(crate) vxlan_ports: Vec<u16>,
    /// Do not reassemble IP fragments (by default a fragmented datagram is tracked once,
    /// when its last fragment arrives, as Zeek counts it).
    #[arg(long)]
    pub(crate) no_defrag: bool,
    /// Verify IPv4, TCP, UDP and ICMP checksums, as Zeek does unless run with -C: a
    /// packet with a bad IPv4 header checksum is dropped, one with a bad transport
    /// checksum counts in no flow's counters and marks TCP and UDP histories with C.
    /// Off by default: a capture taken on a sending host has unfilled (offloaded)
    /// checksums on every packet that host sent.
    #[arg(long)]
    pub(crate) verify_checksums: bool,
    /// Also write an interim record (interim: true, counters so far) for every flow
    /// still live this many seconds after its start, and again every such interval,
    /// when its next packet arrives. Adds the `interim` column to every record.
    #[arg(long, value_name = "SECS")]
    pub(crate) active_timeout: Option<f64>,
    /// Write the metric vocabulary in Prometheus text format to FILE at exit.
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics: Option<PathBuf>,
    /// Silence warnings (such as a capture cut short).
    #[arg(short, long)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Policy {
    /// Skip the oldest hole and keep going.
    SlidingWindow,
    /// End the flow with reason buffer_overflow.
    DropFlow,
}

/// Where and how flow records are written (`flows`, `live`).
#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = crate::record::Format::Jsonl)]
    pub(crate) format: crate::record::Format,
    /// Output file (`-` for standard output, the default).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// Capture files, for the commands that read them.
#[derive(Debug, Args)]
pub(crate) struct FileArgs {
    /// Capture files (pcap or pcapng, either gzip-compressed or not), read in order as
    /// one capture; `-` reads standard input (e.g. `tcpdump -w - | flowscope flows -`).
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Only packets matching this filter, in tcpdump's (BPF) syntax, as `tcpdump -r FILE
    /// EXPR` reads them (libpcap compiles it for each link type in the input); `stats`
    /// counts the rest as filtered out.
    #[arg(long, value_name = "EXPR")]
    pub(crate) bpf: Option<String>,
}

impl TrackOpts {
    /// `--active-timeout` as a duration, checked.
    pub(crate) fn active_timeout(&self) -> anyhow::Result<Option<Duration>> {
        match self.active_timeout {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err(anyhow::anyhow!(
                "--active-timeout must be a positive number of seconds, not {s}"
            )),
        }
    }

    pub(crate) fn config(&self) -> anyhow::Result<FlowTrackerConfig> {
        let secs = |name: &str, s: f64| {
            if s.is_finite() && s > 0.0 {
                Ok(Duration::from_secs_f64(s))
            } else {
                Err(anyhow::anyhow!("--{name} must be a positive number of seconds, not {s}"))
            }
        };
        if self.max_flows == 0 {
            anyhow::bail!("--max-flows must be at least 1");
        }
        if self.vxlan_ports.len() > 4 || self.vxlan_ports.contains(&0) {
            anyhow::bail!("--vxlan-port takes at most 4 ports, none of them 0");
        }
        let mut tunnels = TunnelConfig::default().with_max_depth(self.tunnel_depth);
        if !self.vxlan_ports.is_empty() {
            tunnels = tunnels.with_vxlan_ports(&self.vxlan_ports);
        }
        let defrag =
            if self.no_defrag { DefragConfig::disabled() } else { DefragConfig::default() };
        Ok(FlowTrackerConfig::default()
            .with_idle(
                secs("tcp-idle", self.tcp_idle)?,
                secs("udp-idle", self.udp_idle)?,
                secs("other-idle", self.other_idle)?,
            )
            .with_attempt_idle(secs("tcp-attempt-idle", self.tcp_attempt_idle)?)
            .with_max_flows(self.max_flows)
            .with_max_buffer(self.max_buffer)
            .with_retransmit_check_bytes(self.check_retransmits)
            .with_overflow_policy(match self.overflow_policy {
                Policy::SlidingWindow => OverflowPolicy::SlidingWindow,
                Policy::DropFlow => OverflowPolicy::DropFlow,
            })
            // Keys come from traffic anyone can send: seed the table's hash from the
            // process's own randomness (the output does not depend on it).
            .with_tunnels(tunnels)
            .with_defrag(defrag)
            .with_verify_checksums(self.verify_checksums)
            .with_hash_seed(random_seed()))
    }
}

/// A seed that differs between runs, from the standard library's randomly keyed hasher.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0x5eed_u64)
}
