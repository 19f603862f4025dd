//! Packet time.
//!
//! The core never reads a clock: every instant it knows comes from a packet's capture
//! timestamp (or from the caller, for `advance`). [`Timestamp`] is a plain count of
//! nanoseconds since the Unix epoch, so it can be built from capture data, compared, and
//! subtracted without touching the operating system.

use core::fmt;
use core::time::Duration;

/// A capture timestamp: nanoseconds since the Unix epoch (1970-01-01T00:00:00Z).
///
/// Invariant: none beyond the range of `u64` (about 584 years from 1970). Arithmetic
/// saturates instead of wrapping, so hostile timestamps cannot panic.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself (0 ns).
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp from nanoseconds since the epoch.
    #[inline]
    pub const fn from_nanos(ns: u64) -> Self {
        Timestamp(ns)
    }

    /// A timestamp from seconds and microseconds, as classic pcap stores it.
    ///
    /// `usec` values of one second or more (seen in broken files) carry into the seconds.
    #[inline]
    pub const fn from_secs_micros(secs: u32, usec: u32) -> Self {
        Timestamp(secs as u64 * 1_000_000_000 + usec as u64 * 1_000)
    }

    /// A timestamp from seconds and nanoseconds, as nanosecond pcap stores it.
    #[inline]
    pub const fn from_secs_nanos(secs: u32, nsec: u32) -> Self {
        Timestamp(secs as u64 * 1_000_000_000 + nsec as u64)
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch.
    #[inline]
    pub const fn secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// The nanoseconds past the whole second, in `0..1_000_000_000`.
    #[inline]
    pub const fn subsec_nanos(self) -> u32 {
        (self.0 % 1_000_000_000) as u32
    }

    /// Seconds since the epoch as a float (lossy past microsecond precision for
    /// present-day dates; for display and histograms only).
    #[inline]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The span from `earlier` to `self`, or zero if `earlier` is later.
    #[inline]
    pub const fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at the largest representable timestamp.
    #[inline]
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ns))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}.{:09})", self.secs(), self.subsec_nanos())
    }
}

impl fmt::Display for Timestamp {
    /// Epoch seconds with nanoseconds, e.g. `1258544215.037264000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.secs(), self.subsec_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_and_nanos_agree() {
        let a = Timestamp::from_secs_micros(1_258_544_215, 37_264);
        let b = Timestamp::from_secs_nanos(1_258_544_215, 37_264_000);
        assert_eq!(a, b);
        assert_eq!(a.secs(), 1_258_544_215);
        assert_eq!(a.subsec_nanos(), 37_264_000);
        assert_eq!(a.to_string(), "1258544215.037264000");
    }

    #[test]
    fn oversized_usec_carries() {
        let t = Timestamp::from_secs_micros(10, 2_500_000);
        assert_eq!(t.as_nanos(), 12_500_000_000);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_nanos(u64::MAX - 1);
        assert_eq!(t.saturating_add(Duration::from_secs(5)).as_nanos(), u64::MAX);
        assert_eq!(Timestamp::ZERO.saturating_duration_since(t), Duration::ZERO);
        assert_eq!(
            Timestamp::from_nanos(3_000).saturating_duration_since(Timestamp::from_nanos(1_000)),
            Duration::from_nanos(2_000)
        );
    }
}
