//! Calendar arithmetic for output dates.
//!
//! Every output date is a civil date in the job's `timezone`, carried as `i32` days since
//! 1970-01-01 (the Arrow `Date32` encoding), so tables can do arithmetic on plain integers.
//! Weeks start on Monday; months are calendar months.

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Days since 1970-01-01 of a civil date.
pub type Day = i32;

const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

/// The civil date `d` as days since the Unix epoch.
pub fn day_of(d: NaiveDate) -> Day {
    d.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

/// The civil date of day number `day`.
pub fn date_of(day: Day) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + UNIX_EPOCH_CE_DAYS).expect("day in chrono's range")
}

/// `YYYY-MM-DD` text of a day number (partition names, CSV cells).
pub fn format_day(day: Day) -> String {
    date_of(day).format("%Y-%m-%d").to_string()
}

/// Monday of the week that contains `day`.
pub fn week_start(day: Day) -> Day {
    // 1970-01-01 was a Thursday: shift so that Monday is 0.
    day - (day + 3).rem_euclid(7)
}

/// First day of the month that contains `day`.
pub fn month_start(day: Day) -> Day {
    let d = date_of(day);
    day - (d.day() as i32 - 1)
}

/// First day of the month after the one that contains `day`.
pub fn next_month_start(day: Day) -> Day {
    let d = date_of(month_start(day));
    let next = if d.month() == 12 {
        NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    };
    day_of(next.expect("valid month"))
}

/// Number of days in the month that contains `day` (28..=31).
pub fn month_len(day: Day) -> i32 {
    next_month_start(day) - month_start(day)
}

/// Maps UTC instants to civil days in one time zone.
///
/// Converting through chrono-tz for every event is the hot path of attribution, so the
/// offset is cached per half-hour of UTC time: nearly every zone transition falls on a
/// UTC half-hour boundary, so one lookup serves a whole bucket. A bucket whose two ends
/// disagree (a transition inside it) is never cached and is resolved exactly. The last
/// day found is kept with the instants known to share it (events come mostly in time
/// order, a day a file), so most events cost two compares instead of a division.
#[derive(Clone)]
pub struct DayMapper {
    tz: Tz,
    fixed: bool,
    cache_bucket: i64,
    cache_offset_us: i64,
    /// `[from, to)` in UTC µs: every instant in it is on `last_day`.
    last: (i64, i64),
    last_day: Day,
}

const US_PER_DAY: i64 = 86_400_000_000;
const US_PER_BUCKET: i64 = 1_800_000_000;

fn offset_at(tz: Tz, utc_us: i64) -> i64 {
    match DateTime::<Utc>::from_timestamp_micros(utc_us) {
        Some(t) => tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc() as i64 * 1_000_000,
        None => 0,
    }
}

impl DayMapper {
    pub fn new(tz: Tz) -> Self {
        DayMapper {
            tz,
            fixed: tz == chrono_tz::UTC || tz == chrono_tz::Etc::UTC,
            cache_bucket: i64::MIN,
            cache_offset_us: 0,
            last: (0, 0),
            last_day: 0,
        }
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// UTC offset in microseconds in force at `utc_us`.
    fn offset_us(&mut self, utc_us: i64) -> i64 {
        if self.fixed {
            return 0;
        }
        let bucket = utc_us.div_euclid(US_PER_BUCKET);
        if bucket == self.cache_bucket {
            return self.cache_offset_us;
        }
        let lo = offset_at(self.tz, bucket * US_PER_BUCKET);
        let hi = offset_at(self.tz, bucket * US_PER_BUCKET + US_PER_BUCKET - 1);
        if lo == hi {
            self.cache_bucket = bucket;
            self.cache_offset_us = lo;
            lo
        } else {
            offset_at(self.tz, utc_us)
        }
    }

    /// Civil day, in this zone, of the UTC instant `utc_us` (microseconds since the epoch).
    pub fn day(&mut self, utc_us: i64) -> Day {
        if (self.last.0..self.last.1).contains(&utc_us) {
            return self.last_day;
        }
        let offset = self.offset_us(utc_us);
        let local = utc_us + offset;
        let day = local.div_euclid(US_PER_DAY);
        // The day's instants at this offset, within the half-hour bucket the offset was
        // cached for (where it was not, none is remembered).
        // Saturating: a bound past i64's range only widens the span to its end.
        let span = (day * US_PER_DAY).saturating_sub(offset)
            ..(day.saturating_add(1).saturating_mul(US_PER_DAY)).saturating_sub(offset);
        let held = if self.fixed {
            Some(i64::MIN..i64::MAX)
        } else {
            let bucket = utc_us.div_euclid(US_PER_BUCKET);
            (bucket == self.cache_bucket).then(|| bucket * US_PER_BUCKET..(bucket + 1) * US_PER_BUCKET)
        };
        self.last = held.map_or((0, 0), |h| (span.start.max(h.start), span.end.min(h.end)));
        self.last_day = day as Day;
        day as Day
    }
}

/// UTC microseconds of local midnight starting `day` in `tz` (the first instant of the day
/// when midnight itself falls in a DST gap).
pub fn midnight_utc_us(tz: Tz, day: Day) -> i64 {
    let naive = date_of(day).and_hms_opt(0, 0, 0).expect("midnight");
    let mut probe = naive;
    // A zone may skip midnight (e.g. America/Santiago); take the earliest valid local time.
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc).timestamp_micros();
        }
        probe += chrono::Duration::minutes(30);
    }
    tz.from_utc_datetime(&naive).timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_monday() {
        let mon = day_of(NaiveDate::from_ymd_opt(2024, 1, 15).unwrap());
        for i in 0..7 {
            assert_eq!(week_start(mon + i), mon);
        }
        assert_eq!(week_start(mon - 1), mon - 7);
        assert_eq!(
            week_start(day_of(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap())),
            day_of(NaiveDate::from_ymd_opt(1969, 12, 29).unwrap())
        );
    }

    #[test]
    fn month_lengths() {
        let d = |y, m, dd| day_of(NaiveDate::from_ymd_opt(y, m, dd).unwrap());
        assert_eq!(month_len(d(2024, 2, 10)), 29);
        assert_eq!(month_len(d(2023, 2, 28)), 28);
        assert_eq!(month_len(d(2024, 4, 30)), 30);
        assert_eq!(month_len(d(2024, 12, 31)), 31);
        assert_eq!(month_start(d(2024, 12, 31)), d(2024, 12, 1));
        assert_eq!(next_month_start(d(2024, 12, 31)), d(2025, 1, 1));
    }

    #[test]
    fn day_mapper_remembering_its_last_day_matches_chrono_in_any_order() {
        // Zones with DST, half-hour DST (Lord Howe), a 45-minute offset, a skipped midnight.
        for zone in [
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kathmandu",
            "America/Santiago",
            "UTC",
        ] {
            let tz: Tz = zone.parse().unwrap();
            let mut m = DayMapper::new(tz);
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut us = 1_700_000_000_000_000i64;
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly small steps either way (minutes to a day), sometimes months.
                let step = match x % 8 {
                    0 => (x >> 8) as i64 % (200 * US_PER_DAY),
                    1..=3 => (x >> 8) as i64 % US_PER_DAY,
                    _ => (x >> 8) as i64 % 7_200_000_000,
                };
                us = (us + if x & 1 << 7 == 0 { step } else { -step })
                    .clamp(1_600_000_000_000_000, 1_800_000_000_000_000);
                let want = day_of(tz.timestamp_micros(us).unwrap().date_naive());
                assert_eq!(m.day(us), want, "{zone} at {us}");
            }
        }
    }

    #[test]
    fn day_mapper_matches_chrono() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let mut m = DayMapper::new(tz);
        // Walk across the 2024 DST switches hour by hour.
        let start = 1_709_800_000_000_000i64;
        for h in 0..24 * 300 {
            let us = start + h * 3_600_000_000 + 1_234_567;
            let want = day_of(tz.timestamp_micros(us).unwrap().date_naive());
            assert_eq!(m.day(us), want, "at {us}");
        }
    }
}
