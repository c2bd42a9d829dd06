//! Spend budgets: `SWITCHBOARD_BUDGET=5/day` or `100/month` (USD), per workspace that spends the
//! server's key. Periods are UTC calendar days and months; the arithmetic is pure, so tests move
//! the clock by passing `now`.

use std::fmt;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

/// A limit in USD per period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub limit: f64,
    pub period: Period,
}

impl Budget {
    /// `5/day`, `100/month`, `2.5/d`, `$20/mo`.
    pub fn parse(raw: &str) -> Result<Budget, String> {
        let (amount, period) = raw
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{raw}` is not AMOUNT/day or AMOUNT/month"))?;
        let limit: f64 = amount
            .trim()
            .trim_start_matches('$')
            .parse()
            .map_err(|_| format!("`{amount}` is not an amount in USD"))?;
        if !limit.is_finite() || limit < 0.0 {
            return Err(format!("`{amount}` is not an amount in USD"));
        }
        let period = match period.trim().to_ascii_lowercase().as_str() {
            "day" | "d" | "daily" => Period::Day,
            "month" | "mo" | "m" | "monthly" => Period::Month,
            other => return Err(format!("`{other}` is not a period (day or month)")),
        };
        Ok(Budget { limit, period })
    }

    /// When the period holding `now` (ms) began.
    pub fn period_start(&self, now: i64) -> i64 {
        let day = now.div_euclid(DAY_MS);
        match self.period {
            Period::Day => day * DAY_MS,
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }

    /// When the period holding `now` ends (and the budget resets).
    pub fn resets_at(&self, now: i64) -> i64 {
        let day = now.div_euclid(DAY_MS);
        match self.period {
            Period::Day => (day + 1) * DAY_MS,
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Period::Day => "day",
            Period::Month => "month",
        })
    }
}

/// `SWITCHBOARD_RATE_LIMIT`: requests per second, minute or hour (`60/min`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: std::time::Duration,
}

impl RateLimit {
    pub fn parse(raw: &str) -> Result<RateLimit, String> {
        let (n, unit) = raw
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{raw}` is not COUNT/min (or /s, /h)"))?;
        let requests: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{n}` is not a positive count"))?;
        let per = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => std::time::Duration::from_secs(1),
            "m" | "min" | "minute" => std::time::Duration::from_secs(60),
            "h" | "hour" => std::time::Duration::from_secs(3600),
            other => return Err(format!("`{other}` is not s, min or h")),
        };
        Ok(RateLimit { requests, per })
    }
}

/// `YYYY-MM-DD` of the UTC day `day` days after 1970-01-01.
pub fn date_of_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of `YYYY-MM-DD`, `None` when it is not a date.
pub fn day_of_date(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m, d);
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of a day number.
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

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEC_5_2026_NOON: i64 = 1_796_472_000_000;

    #[test]
    fn budgets_parse() {
        assert_eq!(
            Budget::parse("5/day").unwrap(),
            Budget {
                limit: 5.0,
                period: Period::Day
            }
        );
        assert_eq!(Budget::parse("$100/month").unwrap().period, Period::Month);
        for bad in ["5", "x/day", "5/week", "-1/day", "NaN/day"] {
            assert!(Budget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_are_utc_days_and_calendar_months() {
        assert_eq!(date_of_day(DEC_5_2026_NOON / DAY_MS), "2026-12-05");
        let day = Budget::parse("5/day").unwrap();
        assert_eq!(
            date_of_day(day.period_start(DEC_5_2026_NOON) / DAY_MS),
            "2026-12-05"
        );
        assert_eq!(
            day.resets_at(DEC_5_2026_NOON) - day.period_start(DEC_5_2026_NOON),
            DAY_MS
        );
        let month = Budget::parse("100/month").unwrap();
        assert_eq!(
            date_of_day(month.period_start(DEC_5_2026_NOON) / DAY_MS),
            "2026-12-01"
        );
        assert_eq!(
            date_of_day(month.resets_at(DEC_5_2026_NOON) / DAY_MS),
            "2027-01-01"
        );
        // The last millisecond of a period belongs to it; the next one starts the next.
        let end = month.resets_at(DEC_5_2026_NOON);
        assert_eq!(
            month.period_start(end - 1),
            month.period_start(DEC_5_2026_NOON)
        );
        assert_eq!(month.period_start(end), end);
    }

    #[test]
    fn rate_limits_parse() {
        assert_eq!(
            RateLimit::parse("60/min").unwrap(),
            RateLimit {
                requests: 60,
                per: std::time::Duration::from_secs(60)
            }
        );
        assert_eq!(RateLimit::parse("5/s").unwrap().requests, 5);
        for bad in ["60", "0/min", "x/min", "60/fortnight"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_round_trip() {
        for day in [-1, 0, 59, 60, 11_016, 20_427, 20_792] {
            assert_eq!(day_of_date(&date_of_day(day)), Some(day));
        }
        assert_eq!(day_of_date("2026-02-30"), None);
        assert_eq!(day_of_date("2026-13-01"), None);
        assert_eq!(day_of_date("yesterday"), None);
    }
}
