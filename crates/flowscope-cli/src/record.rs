//! One flow record with Zeek conn.log names and semantics, and its three renderings.

use std::io::{self, Write};
use std::net::IpAddr;

use flowscope::event::{ConnState, EndReason, FlowStats, History, TunnelParents};
use flowscope::extract::{CommunityId, FiveTupleKey, L4Proto, Orientation};
use flowscope::tracker::FlowSnapshot;
use flowscope::Timestamp;

/// What the CLI keeps per flow while it is live.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FlowMeta {
    /// Outer VLAN id of the first packet.
    pub(crate) vlan: Option<u16>,
    /// With `--active-timeout`: when the flow's next interim record is due.
    pub(crate) next_interim: Timestamp,
}

/// A conn.log record.
#[derive(Debug, Clone)]
pub(crate) struct ConnRecord {
    pub(crate) ts: Timestamp,
    pub(crate) uid: Uid,
    pub(crate) orig: (IpAddr, u16),
    pub(crate) resp: (IpAddr, u16),
    pub(crate) proto: &'static str,
    pub(crate) stats: FlowStats,
    pub(crate) conn_state: ConnState,
    pub(crate) history: History,
    /// The key and initiator, for the Community ID, computed only when a record is
    /// written (`stats` and `streams` never need its SHA-1).
    key: FiveTupleKey,
    initiator: Orientation,
    pub(crate) vlan: Option<u16>,
    /// Why the flow ended; `None` for an interim record of a flow still live.
    pub(crate) end_reason: Option<EndReason>,
    /// The uids of the flows that carried this one (Zeek's `tunnel_parents`).
    pub(crate) tunnel_parents: TunnelParents,
}

impl ConnRecord {
    /// The record of a flow as `snap` gives it; `reason` is `None` for a flow still
    /// live (an interim record).
    pub(crate) fn new(
        snap: &FlowSnapshot<FiveTupleKey>,
        reason: Option<EndReason>,
        meta: FlowMeta,
    ) -> Self {
        let &FlowSnapshot { key, initiator, l4, stats, conn_state, history, serial, .. } = snap;
        ConnRecord {
            ts: stats.first_ts(),
            uid: Uid::of(serial),
            orig: key.src(initiator),
            resp: key.dst(initiator),
            proto: match l4 {
                L4Proto::Tcp => "tcp",
                L4Proto::Udp => "udp",
                L4Proto::Icmp => "icmp",
                _ => "unknown_transport",
            },
            stats,
            conn_state,
            history,
            key,
            initiator,
            vlan: meta.vlan,
            end_reason: reason,
            tunnel_parents: snap.tunnel_parents,
        }
    }

    /// The parents' uids.
    fn parents(&self) -> impl Iterator<Item = Uid> + '_ {
        self.tunnel_parents.iter().map(Uid::of)
    }

    /// Zeek leaves duration and payload byte counts unset for single-packet flows.
    fn single(&self) -> bool {
        self.stats.packets() <= 1
    }

    fn duration(&self) -> Option<Secs> {
        (!self.single())
            .then(|| Secs(self.stats.last_ts().as_nanos().saturating_sub(self.ts.as_nanos())))
    }

    fn community_id(&self) -> CommunityId {
        self.key.community_id(0, self.initiator)
    }

    fn missed(&self) -> u64 {
        self.stats.initiator.missed_bytes + self.stats.responder.missed_bytes
    }
}

/// Nanoseconds rendered as seconds with microseconds, as Zeek writes times.
struct Secs(u64);

impl std::fmt::Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000_000, (self.0 % 1_000_000_000) / 1000)
    }
}

/// A Zeek-style uid: `C` and 17 base-62 characters, held inline (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Uid([u8; 18]);

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only ASCII letters and digits are ever stored.
        f.write_str(std::str::from_utf8(&self.0).map_err(|_| std::fmt::Error)?)
    }
}

/// Fixed: uids are deterministic for the same input.
const UID_SEED: u64 = 0x666c_6f77_7363_6f70;

impl Uid {
    /// The uid of the flow with serial number `serial` (its creation order, which the
    /// tracker never reuses): a keyed hash of it, so equal inputs give equal uids and a
    /// tunnelled flow can name its parent's uid from the parent's serial alone.
    pub(crate) fn of(serial: u64) -> Uid {
        uid(UID_SEED, serial)
    }
}

fn uid(seed: u64, ordinal: u64) -> Uid {
    use std::hash::{BuildHasher, Hash, Hasher};
    let state = foldhash::fast::FixedState::with_seed(seed);
    let a = state.hash_one(ordinal);
    let mut h2 = state.build_hasher();
    a.hash(&mut h2);
    ordinal.hash(&mut h2);
    let b = h2.finish();
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = [b'C'; 18];
    // Nine digits from one hash and eight from the other (62^9 < 2^64): 64-bit divisions;
    // one 128-bit number took 3% of `flows` in 128-bit division helpers.
    let (head, tail) = out[1..].split_at_mut(9);
    for (chars, mut n) in [(head, a), (tail, b)] {
        for c in chars {
            *c = DIGITS[(n % 62) as usize];
            n /= 62;
        }
    }
    Uid(out)
}

/// The output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub(crate) enum Format {
    /// JSON lines with Zeek's dotted field names.
    Jsonl,
    /// Zeek's tab-separated log format (readable by zeek-cut).
    Zeek,
    /// Comma-separated values with a header row.
    Csv,
}

pub(crate) const FIELDS: [&str; 23] = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
    "community_id",
    "orig_l2_bytes",
    "resp_l2_bytes",
    "vlan",
    "end_reason",
];

/// The column `--active-timeout` adds after the others: T for an interim record of a
/// flow still live, F for the record of an ended flow.
const INTERIM_FIELD: &str = "interim";

const TYPES: [&str; 23] = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "interval",
    "count",
    "count",
    "string",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
    "string",
    "count",
    "count",
    "count",
    "string",
];

/// Write the header a format needs before its first record.
pub(crate) fn write_header(
    out: &mut impl Write,
    format: Format,
    open: Option<Timestamp>,
    interim_column: bool,
) -> io::Result<()> {
    let (extra, extra_type) = if interim_column { ("\tinterim", "\tbool") } else { ("", "") };
    match format {
        Format::Jsonl => Ok(()),
        Format::Csv if interim_column => writeln!(out, "{},{INTERIM_FIELD}", FIELDS.join(",")),
        Format::Csv => writeln!(out, "{}", FIELDS.join(",")),
        Format::Zeek => {
            writeln!(out, "#separator \\x09")?;
            writeln!(out, "#set_separator\t,")?;
            writeln!(out, "#empty_field\t(empty)")?;
            writeln!(out, "#unset_field\t-")?;
            writeln!(out, "#path\tconn")?;
            writeln!(out, "#open\t{}", zeek_time(open))?;
            writeln!(out, "#fields\t{}{extra}", FIELDS.join("\t"))?;
            writeln!(out, "#types\t{}{extra_type}", TYPES.join("\t"))
        }
    }
}

/// Write what a format needs after its last record.
pub(crate) fn write_footer(
    out: &mut impl Write,
    format: Format,
    close: Option<Timestamp>,
) -> io::Result<()> {
    match format {
        Format::Zeek => writeln!(out, "#close\t{}", zeek_time(close)),
        _ => Ok(()),
    }
}

/// Zeek's `#open`/`#close` stamp (UTC). Times taken from the capture, not the clock,
/// so the output depends only on the input.
fn zeek_time(t: Option<Timestamp>) -> String {
    let secs = t.map_or(0, |t| t.secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}-{:02}-{:02}-{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Write one record.
///
/// With `interim_column`, each record says whether it is an interim record (`interim`);
/// an interim record has no `end_reason`.
pub(crate) fn write_record(
    out: &mut impl Write,
    format: Format,
    r: &ConnRecord,
    interim_column: bool,
) -> io::Result<()> {
    let (i, p) = (&r.stats.initiator, &r.stats.responder);
    let single = r.single();
    match format {
        Format::Jsonl => {
            write!(
                out,
                "{{\"ts\":{},\"uid\":\"{}\",\"id.orig_h\":\"{}\",\"id.orig_p\":{},\"id.resp_h\":\"{}\",\"id.resp_p\":{},\"proto\":\"{}\"",
                Secs(r.ts.as_nanos()),
                r.uid,
                r.orig.0,
                r.orig.1,
                r.resp.0,
                r.resp.1,
                r.proto
            )?;
            if let Some(d) = r.duration() {
                write!(out, ",\"duration\":{d}")?;
            }
            if !single {
                write!(
                    out,
                    ",\"orig_bytes\":{},\"resp_bytes\":{}",
                    i.payload_bytes, p.payload_bytes
                )?;
            }
            write!(out, ",\"conn_state\":\"{}\",\"missed_bytes\":{}", r.conn_state, r.missed())?;
            if !r.history.is_empty() {
                write!(out, ",\"history\":\"{}\"", r.history)?;
            }
            write!(
                out,
                ",\"orig_pkts\":{},\"orig_ip_bytes\":{},\"resp_pkts\":{},\"resp_ip_bytes\":{},\"community_id\":\"{}\",\"orig_l2_bytes\":{},\"resp_l2_bytes\":{}",
                i.packets, i.ip_bytes, p.packets, p.ip_bytes, r.community_id(), i.l2_bytes, p.l2_bytes
            )?;
            // Zeek's JSON leaves unset fields out.
            if !r.tunnel_parents.is_empty() {
                write!(out, ",\"tunnel_parents\":[")?;
                for (n, u) in r.parents().enumerate() {
                    write!(out, "{}\"{u}\"", if n > 0 { "," } else { "" })?;
                }
                write!(out, "]")?;
            }
            match r.vlan {
                Some(v) => write!(out, ",\"vlan\":{v}")?,
                None => write!(out, ",\"vlan\":null")?,
            }
            if let Some(reason) = r.end_reason {
                write!(out, ",\"end_reason\":\"{}\"", reason.as_str())?;
            }
            if interim_column {
                write!(out, ",\"interim\":{}", r.end_reason.is_none())?;
            }
            writeln!(out, "}}")
        }
        Format::Zeek | Format::Csv => {
            // Written field by field straight into the buffered writer: no per-record
            // strings. Nothing here needs quoting (no field holds a comma or a tab).
            let sep = if format == Format::Zeek { '\t' } else { ',' };
            let unset = if format == Format::Zeek { "-" } else { "" };
            write!(out, "{}{sep}{}{sep}", Secs(r.ts.as_nanos()), r.uid)?;
            write!(out, "{}{sep}{}{sep}{}{sep}{}{sep}", r.orig.0, r.orig.1, r.resp.0, r.resp.1)?;
            write!(out, "{}{sep}", r.proto)?;
            match r.duration() {
                Some(d) => write!(out, "{d}{sep}")?,
                None => write!(out, "{unset}{sep}")?,
            }
            if single {
                write!(out, "{unset}{sep}{unset}{sep}")?;
            } else {
                write!(out, "{}{sep}{}{sep}", i.payload_bytes, p.payload_bytes)?;
            }
            write!(out, "{}{sep}{}{sep}", r.conn_state, r.missed())?;
            if r.history.is_empty() {
                write!(out, "{unset}{sep}")?;
            } else {
                write!(out, "{}{sep}", r.history)?;
            }
            write!(
                out,
                "{}{sep}{}{sep}{}{sep}{}{sep}",
                i.packets, i.ip_bytes, p.packets, p.ip_bytes
            )?;
            // A set: Zeek's set separator is a comma, which CSV must then quote.
            let quote = format == Format::Csv && r.tunnel_parents.len() > 1;
            if r.tunnel_parents.is_empty() {
                write!(out, "{unset}")?;
            }
            if quote {
                write!(out, "\"")?;
            }
            for (n, u) in r.parents().enumerate() {
                write!(out, "{}{u}", if n > 0 { "," } else { "" })?;
            }
            if quote {
                write!(out, "\"")?;
            }
            write!(out, "{sep}")?;
            write!(out, "{}{sep}{}{sep}{}{sep}", r.community_id(), i.l2_bytes, p.l2_bytes)?;
            match r.vlan {
                Some(v) => write!(out, "{v}{sep}")?,
                None => write!(out, "{unset}{sep}")?,
            }
            match r.end_reason {
                Some(reason) => write!(out, "{}", reason.as_str())?,
                None => write!(out, "{unset}")?,
            }
            if interim_column {
                let interim = r.end_reason.is_none();
                match format {
                    Format::Zeek => write!(out, "{sep}{}", if interim { "T" } else { "F" })?,
                    _ => write!(out, "{sep}{interim}")?,
                }
            }
            writeln!(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeek_times_are_utc_calendar_dates() {
        assert_eq!(zeek_time(Some(Timestamp::from_nanos(0))), "1970-01-01-00-00-00");
        assert_eq!(
            zeek_time(Some(Timestamp::from_secs_micros(1_767_225_600, 0))),
            "2026-01-01-00-00-00"
        );
        assert_eq!(
            zeek_time(Some(Timestamp::from_secs_micros(951_782_400, 0))),
            "2000-02-29-00-00-00"
        );
    }

    #[test]
    fn seconds_have_microseconds() {
        assert_eq!(Secs(1_258_544_215_037_264_999).to_string(), "1258544215.037264");
        assert_eq!(Secs(5_000).to_string(), "0.000005");
    }
}
