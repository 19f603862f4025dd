//! Tracker configuration.

use core::time::Duration;

use crate::defrag::DefragConfig;
use crate::extract::L4Proto;
use crate::packet::TunnelConfig;

/// How the tracker times flows out and how big its table may grow.
///
/// `#[non_exhaustive]`: start from [`FlowTrackerConfig::default`] and set fields (or use
/// the `with_*` methods). The reasoning behind each default is in `docs/tracker.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowTrackerConfig {
    /// Idle timeout of a TCP flow past its handshake, or picked up mid-stream (300 s).
    pub tcp_idle: Duration,
    /// How long after its first packet a TCP connection attempt that drew no answer is
    /// kept (30 s). Counted from the start, not from the last packet: SYN retransmissions
    /// do not keep an unanswered attempt alive (Zeek's `tcp_attempt_delay`, 5 s there).
    pub tcp_attempt_idle: Duration,
    /// How long a TCP flow lingers after both FINs or a RST, so late ACKs and
    /// retransmitted FINs stay in it (5 s).
    pub tcp_linger: Duration,
    /// Idle timeout of a UDP flow (60 s).
    pub udp_idle: Duration,
    /// Idle timeout of ICMP and every other protocol (30 s).
    pub other_idle: Duration,
    /// The table's hard cap on live flows (1,048,576). When full, the least recently
    /// active flow is evicted to make room.
    pub max_flows: usize,
    /// Seed of the table's hash function. Fixed by default so runs are reproducible;
    /// set a random one where keys come from untrusted traffic and hash flooding is a
    /// concern (the CLI does).
    pub hash_seed: u64,
    /// Ports taken as a server's when deciding who started a flow picked up without its
    /// SYN (see [`FlowTrackerConfig::is_likely_server_port`]). Sorted ascending.
    pub tcp_server_ports: &'static [u16],
    /// The same for UDP. Sorted ascending.
    pub udp_server_ports: &'static [u16],
    /// Most out-of-order bytes the driver buffers per flow side (1 MiB).
    pub max_buffer: usize,
    /// Most out-of-order bytes the driver buffers across all flows (256 MiB): many flows
    /// each under `max_buffer` cannot add up past it. At this cap the same
    /// `overflow_policy` applies as at a side's own.
    pub max_reassembly_memory: usize,
    /// What reassembly does at a cap.
    pub overflow_policy: OverflowPolicy,
    /// Which bytes win where buffered segments overlap.
    pub overlap_policy: OverlapPolicy,
    /// Bytes of each side's most recently delivered stream data the default reassembler
    /// keeps, so that a retransmission of them whose bytes differ is counted as
    /// inconsistent (0, the default: off). Off by default because keeping them copies
    /// every in-order byte once, which zero-copy delivery otherwise never does.
    /// Retransmissions that overlap bytes still buffered out of order are compared
    /// whatever this is. Costs this many bytes per side of every TCP flow with stream
    /// state, counted by `FlowDriver::memory_bytes`.
    pub retransmit_check_bytes: usize,
    /// Which tunnels to follow (all kinds, 4 deep, by default): the packet inside a
    /// tunnel is tracked as a flow of its own, as well as the tunnel's outer flow.
    pub tunnels: TunnelConfig,
    /// IP defragmentation bounds (on by default): fragments are held until their
    /// datagram is whole, which is then tracked as one packet, as Zeek counts it.
    pub defrag: DefragConfig,
    /// Verify checksums, as Zeek does unless run with `-C` (off). A packet whose IPv4
    /// header checksum is wrong is dropped before it is keyed. One whose TCP, UDP, ICMP
    /// or ICMPv6 checksum is wrong reaches its flow (creating it if it is new) but is
    /// counted in none of the flow's counters and changes none of its state; TCP and UDP
    /// flows get a `C` (`c` from the responder) in their history at the 1st, 10th,
    /// 100th, ... such packet from a side. Both kinds are counted in
    /// [`TrackerStats::bad_checksum`](super::TrackerStats::bad_checksum). Segments cut
    /// by snaplen and IP fragments cannot be summed and pass. Off by default: a capture
    /// taken on a sending host has checksum offload's unfilled checksums on every
    /// packet that host sent, and tshark, tcpflow and argus do not verify either.
    pub verify_checksums: bool,
}

/// What to do with overlapping bytes that differ.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OverlapPolicy {
    /// Bytes that arrived first are kept (default): what most end hosts do, and it keeps
    /// an attacker from rewriting bytes an IDS already buffered.
    #[default]
    FirstWins,
    /// Bytes that arrived last replace buffered ones (delivered bytes are never
    /// replaced).
    LastWins,
}

/// What reassembly does when out-of-order data would exceed a buffer cap.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Stop reassembling the flow and end it with `EndReason::BufferOverflow`; its later
    /// packets are absorbed until it closes or goes idle.
    DropFlow,
    /// Skip the oldest hole (reported as a gap) and deliver what follows it, until the
    /// new data fits (default).
    #[default]
    SlidingWindow,
}

/// Well-known TCP service ports: the services Zeek ships analyzers for, plus common
/// databases and brokers. Used only to orient flows whose start was not seen.
pub const DEFAULT_TCP_SERVER_PORTS: &[u16] = &[
    21, 22, 23, 25, 53, 79, 80, 81, 88, 102, 110, 111, 113, 135, 139, 143, 179, 389, 443, 445, 502,
    513, 514, 563, 585, 587, 614, 631, 636, 989, 990, 992, 993, 994, 995, 1080, 1433, 1521, 1723,
    1883, 2049, 2811, 3128, 3306, 3389, 5060, 5061, 5222, 5223, 5269, 5432, 5672, 6379, 6666, 6667,
    6668, 6669, 8000, 8080, 8443, 8888, 9200, 11211, 20000, 27017, 44818,
];

/// Well-known UDP service ports (see [`DEFAULT_TCP_SERVER_PORTS`]). DHCP's client port 68
/// is deliberately absent: a server's reply from 67 to 68 marks 67 as the server.
pub const DEFAULT_UDP_SERVER_PORTS: &[u16] = &[
    53, 67, 69, 88, 123, 137, 138, 161, 162, 389, 443, 500, 514, 1812, 1813, 1900, 2152, 3478,
    4500, 4789, 5060, 5353, 5355, 6081, 11211, 20000, 44818, 47808,
];

impl Default for FlowTrackerConfig {
    fn default() -> Self {
        FlowTrackerConfig {
            tcp_idle: Duration::from_secs(300),
            tcp_attempt_idle: Duration::from_secs(30),
            tcp_linger: Duration::from_secs(5),
            udp_idle: Duration::from_secs(60),
            other_idle: Duration::from_secs(30),
            max_flows: 1 << 20,
            hash_seed: 0x9e37_79b9_7f4a_7c15,
            tcp_server_ports: DEFAULT_TCP_SERVER_PORTS,
            udp_server_ports: DEFAULT_UDP_SERVER_PORTS,
            max_buffer: 1 << 20,
            max_reassembly_memory: 256 << 20,
            overflow_policy: OverflowPolicy::SlidingWindow,
            overlap_policy: OverlapPolicy::FirstWins,
            retransmit_check_bytes: 0,
            tunnels: TunnelConfig::default(),
            defrag: DefragConfig::default(),
            verify_checksums: false,
        }
    }
}

impl FlowTrackerConfig {
    /// Set the table cap.
    pub fn with_max_flows(mut self, n: usize) -> Self {
        self.max_flows = n;
        self
    }

    /// Set the TCP (established), UDP and other idle timeouts.
    pub fn with_idle(mut self, tcp: Duration, udp: Duration, other: Duration) -> Self {
        self.tcp_idle = tcp;
        self.udp_idle = udp;
        self.other_idle = other;
        self
    }

    /// Set how long an unanswered TCP attempt is kept after its first packet.
    pub fn with_attempt_idle(mut self, d: Duration) -> Self {
        self.tcp_attempt_idle = d;
        self
    }

    /// Set how long a TCP flow lingers after both FINs or a RST.
    pub fn with_linger(mut self, d: Duration) -> Self {
        self.tcp_linger = d;
        self
    }

    /// Set the per-side reassembly buffer cap.
    pub fn with_max_buffer(mut self, bytes: usize) -> Self {
        self.max_buffer = bytes;
        self
    }

    /// Set the global reassembly memory cap.
    pub fn with_max_reassembly_memory(mut self, bytes: usize) -> Self {
        self.max_reassembly_memory = bytes;
        self
    }

    /// Set the overflow policy.
    pub fn with_overflow_policy(mut self, p: OverflowPolicy) -> Self {
        self.overflow_policy = p;
        self
    }

    /// Set the overlap policy.
    pub fn with_overlap_policy(mut self, p: OverlapPolicy) -> Self {
        self.overlap_policy = p;
        self
    }

    /// Set how many recently delivered bytes per side are kept to check retransmissions
    /// against ([`retransmit_check_bytes`](Self::retransmit_check_bytes)).
    pub fn with_retransmit_check_bytes(mut self, bytes: usize) -> Self {
        self.retransmit_check_bytes = bytes;
        self
    }

    /// Set which tunnels to follow ([`TunnelConfig::disabled`] tracks outer headers only).
    pub fn with_tunnels(mut self, t: TunnelConfig) -> Self {
        self.tunnels = t;
        self
    }

    /// Set the defragmentation bounds ([`DefragConfig::disabled`] keys fragments as
    /// they come).
    pub fn with_defrag(mut self, d: DefragConfig) -> Self {
        self.defrag = d;
        self
    }

    /// Verify checksums (see [`FlowTrackerConfig::verify_checksums`]).
    pub fn with_verify_checksums(mut self, on: bool) -> Self {
        self.verify_checksums = on;
        self
    }

    /// Set the hash seed.
    pub fn with_hash_seed(mut self, seed: u64) -> Self {
        self.hash_seed = seed;
        self
    }

    /// True when `port` is a well-known server port for `l4` (TCP and UDP only).
    pub fn is_likely_server_port(&self, l4: L4Proto, port: u16) -> bool {
        match l4 {
            L4Proto::Tcp => self.tcp_server_ports.binary_search(&port).is_ok(),
            L4Proto::Udp => self.udp_server_ports.binary_search(&port).is_ok(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists_are_sorted_for_binary_search() {
        assert!(DEFAULT_TCP_SERVER_PORTS.windows(2).all(|w| w[0] < w[1]));
        assert!(DEFAULT_UDP_SERVER_PORTS.windows(2).all(|w| w[0] < w[1]));
        let c = FlowTrackerConfig::default();
        assert!(c.is_likely_server_port(L4Proto::Tcp, 443));
        assert!(!c.is_likely_server_port(L4Proto::Tcp, 50000));
        assert!(c.is_likely_server_port(L4Proto::Udp, 67));
        assert!(!c.is_likely_server_port(L4Proto::Udp, 68));
        assert!(!c.is_likely_server_port(L4Proto::Icmp, 8));
    }
}
