//! One flow record with Zeek conn.log names and semantics, and its three renderings.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr};

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

    /// The duration in nanoseconds, unset for single-packet flows.
    fn duration(&self) -> Option<u64> {
        (!self.single()).then(|| self.stats.last_ts().as_nanos().saturating_sub(self.ts.as_nanos()))
    }

    fn community_id(&self) -> CommunityId {
        self.key.community_id(0, self.initiator)
    }

    fn missed(&self) -> u64 {
        self.stats.initiator.missed_bytes + self.stats.responder.missed_bytes
    }
}

/// A Zeek-style uid: `C` and 17 base-62 characters, held inline (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Uid([u8; 18]);

impl Uid {
    /// The uid's text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII letters and digits are ever stored, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

/// One record's text, built in a buffer reused from record to record.
///
/// Written by hand rather than with `write!`: the formatting machinery cost about 7,600
/// instructions per record (callgrind, `flows` on a 100,000-packet `make_large` capture,
/// 22,873 records: half of the whole run), for text that is only integers, addresses and
/// fixed words. `itoa` renders the integers; addresses are written here (IPv6 checked
/// against std's `Display` by a test).
#[derive(Debug, Default)]
pub(crate) struct Line(Vec<u8>);

impl Line {
    /// The text so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    fn int(&mut self, n: impl itoa::Integer) {
        self.0.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    /// Nanoseconds as seconds with six decimals (Zeek's times and intervals).
    fn secs(&mut self, nanos: u64) {
        self.int(nanos / 1_000_000_000);
        let micros = (nanos % 1_000_000_000 / 1000) as u32;
        self.byte(b'.');
        for div in [100_000, 10_000, 1_000, 100, 10, 1] {
            self.byte(b'0' + (micros / div % 10) as u8);
        }
    }

    fn addr(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(v4) => {
                for (n, octet) in v4.octets().into_iter().enumerate() {
                    if n > 0 {
                        self.byte(b'.');
                    }
                    self.int(octet);
                }
            }
            IpAddr::V6(v6) => self.addr_v6(v6),
        }
    }

    /// An IPv6 address as std's `Display` writes it (RFC 5952: lower-case hex without
    /// leading zeros, the first longest run of two or more zero groups as `::`, and
    /// IPv4-mapped addresses as `::ffff:a.b.c.d`), without the formatting machinery:
    /// `Display` cost about 760 instructions an address more (callgrind, `flows` on a
    /// 100,000-packet make_large capture, one flow in five IPv6: 288.6M -> 281.6M for the
    /// run). A test holds it to std's output over 200,000 seeded addresses.
    fn addr_v6(&mut self, a: Ipv6Addr) {
        if let Some(v4) = a.to_ipv4_mapped() {
            self.str("::ffff:");
            return self.addr(IpAddr::V4(v4));
        }
        let groups = a.segments();
        // The first longest run of zero groups: (start, len).
        let (mut best, mut run) = ((0, 0), (0, 0));
        for (i, &g) in groups.iter().enumerate() {
            if g != 0 {
                run = (0, 0);
                continue;
            }
            if run.1 == 0 {
                run.0 = i;
            }
            run.1 += 1;
            if run.1 > best.1 {
                best = run;
            }
        }
        let hex = |l: &mut Line, part: &[u16]| {
            for (n, &g) in part.iter().enumerate() {
                if n > 0 {
                    l.byte(b':');
                }
                l.hex(g);
            }
        };
        match best {
            (start, len) if len > 1 => {
                hex(self, groups.get(..start).unwrap_or(&[]));
                self.str("::");
                hex(self, groups.get(start + len..).unwrap_or(&[]));
            }
            _ => hex(self, &groups),
        }
    }

    /// A group in lower-case hex, without leading zeros.
    fn hex(&mut self, g: u16) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut started = false;
        for shift in [12, 8, 4, 0] {
            let d = (g >> shift) & 0xf;
            if d != 0 || started || shift == 0 {
                started = true;
                self.byte(DIGITS[usize::from(d)]);
            }
        }
    }
}

/// Write one record to `out`, rendered in `line` (a buffer kept between records).
///
/// With `interim_column`, each record says whether it is an interim record (`interim`);
/// an interim record has no `end_reason`.
pub(crate) fn write_record(
    out: &mut impl Write,
    line: &mut Line,
    format: Format,
    r: &ConnRecord,
    interim_column: bool,
) -> io::Result<()> {
    line.clear();
    match format {
        Format::Jsonl => jsonl(line, r, interim_column),
        Format::Zeek | Format::Csv => columns(line, format, r, interim_column),
    }
    out.write_all(line.as_bytes())
}

/// Zeek's JSON style: dotted keys, unset fields left out.
fn jsonl(l: &mut Line, r: &ConnRecord, interim_column: bool) {
    let (i, p) = (&r.stats.initiator, &r.stats.responder);
    l.str("{\"ts\":");
    l.secs(r.ts.as_nanos());
    l.str(",\"uid\":\"");
    l.str(r.uid.as_str());
    l.str("\",\"id.orig_h\":\"");
    l.addr(r.orig.0);
    l.str("\",\"id.orig_p\":");
    l.int(r.orig.1);
    l.str(",\"id.resp_h\":\"");
    l.addr(r.resp.0);
    l.str("\",\"id.resp_p\":");
    l.int(r.resp.1);
    l.str(",\"proto\":\"");
    l.str(r.proto);
    l.byte(b'"');
    if let Some(d) = r.duration() {
        l.str(",\"duration\":");
        l.secs(d);
    }
    if !r.single() {
        l.str(",\"orig_bytes\":");
        l.int(i.payload_bytes);
        l.str(",\"resp_bytes\":");
        l.int(p.payload_bytes);
    }
    l.str(",\"conn_state\":\"");
    l.str(r.conn_state.as_str());
    l.str("\",\"missed_bytes\":");
    l.int(r.missed());
    if !r.history.is_empty() {
        l.str(",\"history\":\"");
        l.str(r.history.as_str());
        l.byte(b'"');
    }
    l.str(",\"orig_pkts\":");
    l.int(i.packets);
    l.str(",\"orig_ip_bytes\":");
    l.int(i.ip_bytes);
    l.str(",\"resp_pkts\":");
    l.int(p.packets);
    l.str(",\"resp_ip_bytes\":");
    l.int(p.ip_bytes);
    l.str(",\"community_id\":\"");
    l.0.extend_from_slice(&r.community_id().to_ascii());
    l.str("\",\"orig_l2_bytes\":");
    l.int(i.l2_bytes);
    l.str(",\"resp_l2_bytes\":");
    l.int(p.l2_bytes);
    if !r.tunnel_parents.is_empty() {
        l.str(",\"tunnel_parents\":[");
        for (n, u) in r.parents().enumerate() {
            if n > 0 {
                l.byte(b',');
            }
            l.byte(b'"');
            l.str(u.as_str());
            l.byte(b'"');
        }
        l.byte(b']');
    }
    match r.vlan {
        Some(v) => {
            l.str(",\"vlan\":");
            l.int(v);
        }
        None => l.str(",\"vlan\":null"),
    }
    if let Some(reason) = r.end_reason {
        l.str(",\"end_reason\":\"");
        l.str(reason.as_str());
        l.byte(b'"');
    }
    if interim_column {
        l.str(if r.end_reason.is_none() { ",\"interim\":true" } else { ",\"interim\":false" });
    }
    l.str("}\n");
}

/// Zeek's TSV or CSV: every field in `FIELDS` order. Nothing needs quoting but a CSV
/// set of several tunnel parents (no field holds a comma or a tab otherwise).
fn columns(l: &mut Line, format: Format, r: &ConnRecord, interim_column: bool) {
    let (i, p) = (&r.stats.initiator, &r.stats.responder);
    let sep = if format == Format::Zeek { b'\t' } else { b',' };
    let unset = if format == Format::Zeek { "-" } else { "" };
    let int = |l: &mut Line, n: u64| {
        l.int(n);
        l.byte(sep);
    };
    l.secs(r.ts.as_nanos());
    l.byte(sep);
    l.str(r.uid.as_str());
    l.byte(sep);
    for (addr, port) in [r.orig, r.resp] {
        l.addr(addr);
        l.byte(sep);
        int(l, u64::from(port));
    }
    l.str(r.proto);
    l.byte(sep);
    match r.duration() {
        Some(d) => l.secs(d),
        None => l.str(unset),
    }
    l.byte(sep);
    if r.single() {
        for _ in 0..2 {
            l.str(unset);
            l.byte(sep);
        }
    } else {
        int(l, i.payload_bytes);
        int(l, p.payload_bytes);
    }
    l.str(r.conn_state.as_str());
    l.byte(sep);
    int(l, r.missed());
    l.str(if r.history.is_empty() { unset } else { r.history.as_str() });
    l.byte(sep);
    for n in [i.packets, i.ip_bytes, p.packets, p.ip_bytes] {
        int(l, n);
    }
    // A set: Zeek's set separator is a comma, which CSV must then quote.
    let quote = format == Format::Csv && r.tunnel_parents.len() > 1;
    if r.tunnel_parents.is_empty() {
        l.str(unset);
    }
    if quote {
        l.byte(b'"');
    }
    for (n, u) in r.parents().enumerate() {
        if n > 0 {
            l.byte(b',');
        }
        l.str(u.as_str());
    }
    if quote {
        l.byte(b'"');
    }
    l.byte(sep);
    l.0.extend_from_slice(&r.community_id().to_ascii());
    l.byte(sep);
    int(l, i.l2_bytes);
    int(l, p.l2_bytes);
    match r.vlan {
        Some(v) => l.int(v),
        None => l.str(unset),
    }
    l.byte(sep);
    l.str(r.end_reason.map_or(unset, |reason| reason.as_str()));
    if interim_column {
        let interim = r.end_reason.is_none();
        l.byte(sep);
        l.str(match (format, interim) {
            (Format::Zeek, true) => "T",
            (Format::Zeek, false) => "F",
            (_, true) => "true",
            (_, false) => "false",
        });
    }
    l.byte(b'\n');
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

    fn text(f: impl FnOnce(&mut Line)) -> String {
        let mut l = Line::default();
        f(&mut l);
        String::from_utf8(l.0).unwrap()
    }

    #[test]
    fn seconds_have_microseconds() {
        assert_eq!(text(|l| l.secs(1_258_544_215_037_264_999)), "1258544215.037264");
        assert_eq!(text(|l| l.secs(5_000)), "0.000005");
        assert_eq!(text(|l| l.secs(0)), "0.000000");
        assert_eq!(text(|l| l.secs(u64::MAX)), "18446744073.709551");
    }

    #[test]
    fn ipv6_addresses_render_as_std_does_over_random_zero_runs() {
        // Groups zero half the time, so runs of every length and position occur; each
        // group otherwise random, one nibble, or the IPv4-mapped prefix.
        let mut rng = flowscope::testkit::Rng::new(0x6_5952);
        for _ in 0..200_000 {
            let mut g = [0u16; 8];
            for x in &mut g {
                *x = match rng.below(4) {
                    0 | 1 => 0,
                    2 => rng.below(16) as u16,
                    _ => rng.next_u64() as u16,
                };
            }
            if rng.below(16) == 0 {
                g[..6].copy_from_slice(&[0, 0, 0, 0, 0, 0xffff]);
            }
            let a = Ipv6Addr::from(g);
            assert_eq!(text(|l| l.addr(IpAddr::V6(a))), a.to_string(), "{g:x?}");
        }
    }

    #[test]
    fn addresses_render_as_std_does() {
        for a in [
            "0.0.0.0",
            "10.2.30.255",
            "255.255.255.255",
            "::",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:192.0.2.1",
            "fe80::1:0:0:1",
        ] {
            let a: IpAddr = a.parse().unwrap();
            assert_eq!(text(|l| l.addr(a)), a.to_string());
        }
    }
}
