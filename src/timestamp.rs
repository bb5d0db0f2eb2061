//! UTC timestamps as masctl prints them and names files with.

use std::time::SystemTime;

/// `2026-08-04 10:00:00`: when a generation was made, as `masctl generations` lists it.
pub fn date_time(t: SystemTime) -> String {
    format(t, "%Y-%m-%d %H:%M:%S")
}

/// `20260804T100000Z`: sorts as it reads; part of a backup's file name.
pub fn compact(t: SystemTime) -> String {
    format(t, "%Y%m%dT%H%M%SZ")
}

fn format(t: SystemTime, fmt: &str) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => ts.strftime(fmt).to_string(),
        // Outside jiff's range (years beyond ±9999): seconds are still exact.
        Err(_) => t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_table() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_785_837_600);
        assert_eq!(date_time(t), "2026-08-04 10:00:00");
        assert_eq!(compact(t), "20260804T100000Z");
        assert_eq!(date_time(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00");
    }
}
