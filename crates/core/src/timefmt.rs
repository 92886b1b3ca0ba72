//! Timestamps as they appear in entries and responses: RFC 3339, UTC, microseconds.
//! One fixed format so canonical bytes never depend on how a clock printed itself.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Where "now" comes from. Injected so tests can pin time (rustls's `TimeProvider`).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Parses any RFC 3339 timestamp (used for query filters and stored entries).
pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_fixed_width_utc() {
        assert_eq!(
            format(datetime!(2026-01-18 07:50:24.5 +02:00)),
            "2026-01-18T05:50:24.500000Z"
        );
        let t = datetime!(2026-11-23 11:17:39.123456 UTC);
        assert_eq!(parse(&format(t)).expect("parse"), t);
    }
}
