//! The longest wait between two runs of a cron schedule (five fields or a
//! macro, as the CRD admits them), for the alert on a backup older than
//! its schedule allows: the operator exports it per store, so the alert
//! needs no cron parser of its own.

/// Seconds between two consecutive runs at most, over the runs of 400
/// days from a fixed Monday (so a schedule gives the same figure every
/// time); None for a schedule that does not parse or never runs. Every
/// matching day has the same times of day, so the walk is over days (400)
/// and times of day (1,440 at most), whatever the schedule: a stack's
/// schedule cannot make the operator spin.
pub fn longest_gap_seconds(schedule: &str) -> Option<i64> {
    let cron = Cron::parse(schedule)?;
    let times: Vec<i64> = (0..24u32)
        .filter(|h| cron.hours.contains(*h))
        .flat_map(|h| {
            (0..60u32)
                .filter(|m| cron.minutes.contains(*m))
                .map(move |m| i64::from(h) * 3_600 + i64::from(m) * 60)
        })
        .collect();
    let (first, last) = (*times.first()?, *times.last()?);
    let within = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    // 2024-01-01 was a Monday; 400 days cover a year's months and weekdays.
    let start = days_from_civil(2024, 1, 1);
    let days: Vec<i64> = (start..start + 400)
        .filter(|day| {
            let (_, month, dom) = civil_from_days(*day);
            let dow = (day + 4).rem_euclid(7); // 1970-01-01 was a Thursday (4)
            cron.day_matches(month, dom, dow)
        })
        .collect();
    let across = days
        .windows(2)
        .map(|w| (w[1] - w[0]) * 86_400 - last + first)
        .max();
    let longest = match (days.len(), across) {
        (0, _) => return None,
        (_, Some(a)) => a.max(within),
        (_, None) => within,
    };
    Some(longest).filter(|g| *g > 0)
}

/// A set of values of one field, as a bit mask.
#[derive(Clone, Copy)]
struct Field(u64);

impl Field {
    fn contains(self, v: u32) -> bool {
        self.0 & (1u64 << v) != 0
    }
}

struct Cron {
    minutes: Field,
    hours: Field,
    dom: Field,
    months: Field,
    dow: Field,
    dom_any: bool,
    dow_any: bool,
}

impl Cron {
    fn parse(schedule: &str) -> Option<Self> {
        let expanded = match schedule.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [mi, h, dom, mo, dow] = fields.as_slice() else {
            return None;
        };
        Some(Self {
            minutes: field(mi, 0, 59, &[])?,
            hours: field(h, 0, 23, &[])?,
            dom: field(dom, 1, 31, &[])?,
            months: field(mo, 1, 12, &MONTHS)?,
            // 7 is Sunday too.
            dow: {
                let f = field(dow, 0, 7, &DAYS)?;
                Field(f.0 | u64::from(f.contains(7)))
            },
            dom_any: dom.starts_with('*'),
            dow_any: dow.starts_with('*'),
        })
    }

    /// Cron's rule: with both day fields restricted, either may match.
    fn day_matches(&self, month: u32, dom: u32, dow: i64) -> bool {
        if !self.months.contains(month) {
            return false;
        }
        let by_dom = self.dom.contains(dom);
        let by_dow = self.dow.contains(dow as u32);
        match (self.dom_any, self.dow_any) {
            (false, false) => by_dom || by_dow,
            _ => by_dom && by_dow,
        }
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field: `*`, numbers, names, ranges and steps, comma-separated.
fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Option<Field> {
    let value = |s: &str| -> Option<u32> {
        let lower = s.to_ascii_lowercase();
        let offset = if names.len() == 12 { 1 } else { 0 };
        names
            .iter()
            .position(|n| *n == lower)
            .map(|i| i as u32 + offset)
            .or_else(|| s.parse().ok())
            .filter(|v| (min..=max).contains(v))
    };
    let mut mask = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return None;
        }
        let mut v = lo;
        while v <= hi {
            mask |= 1u64 << v;
            v += step;
        }
    }
    Some(Field(mask))
}

/// Days since 1970-01-01 of a date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_of_common_schedules() {
        let h = 3_600;
        assert_eq!(longest_gap_seconds("0 3 * * *"), Some(24 * h));
        assert_eq!(longest_gap_seconds("@daily"), Some(24 * h));
        assert_eq!(longest_gap_seconds("@hourly"), Some(h));
        assert_eq!(longest_gap_seconds("*/15 * * * *"), Some(15 * 60));
        assert_eq!(longest_gap_seconds("0 */6 * * *"), Some(6 * h));
        assert_eq!(longest_gap_seconds("0 2 * * 1-5"), Some(72 * h));
        assert_eq!(longest_gap_seconds("0 2 * * sun"), Some(7 * 24 * h));
        assert_eq!(longest_gap_seconds("0 0 * * 7"), Some(7 * 24 * h));
        assert_eq!(longest_gap_seconds("@monthly"), Some(31 * 24 * h));
        assert_eq!(longest_gap_seconds("0 1,13 * * *"), Some(12 * h));
        assert_eq!(longest_gap_seconds("30 4 1,15 * *"), Some(17 * 24 * h));
    }

    #[test]
    fn what_does_not_parse_has_no_gap() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "0 3 * * mon-",
            "0 0 30 2 *",
            "*/0 * * * *",
        ] {
            assert_eq!(longest_gap_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates_round_trip() {
        for day in [-1, 0, 1, 19_723, 20_000, 30_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }
}
