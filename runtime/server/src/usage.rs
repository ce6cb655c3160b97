//! What builds used, as the meter keeps it ([`MeteredBuild`], in milliseconds) and as the API
//! shows it ([`Usage`], in seconds), with the credit rule and the calendar arithmetic of
//! usage periods (UTC days and months).
//!
//! A credit is one second of a size-1 container (1 CPU, 2 GiB): a container counts its
//! seconds times its size ("container credit units"), and the script process counts its
//! seconds (it runs the action jobs, so their time is not counted again). This module only
//! defines data and pure rules: the meter ([`crate::meter`]) computes the figures, the
//! database keeps them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What one ended build used, as the meter writes it once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeteredBuild {
    /// The build.
    pub build_id: String,
    /// Its org.
    pub org: String,
    /// When it ended, in milliseconds since the Unix epoch: the period it counts in.
    pub ended_ms: i64,
    /// Milliseconds its containers ran.
    pub container_ms: i64,
    /// The same, times each container's size.
    pub container_size_ms: i64,
    /// Milliseconds its action jobs' attempts ran.
    pub action_ms: i64,
    /// Milliseconds its script process ran (suspensions excluded).
    pub script_ms: i64,
    /// Each job's share.
    pub jobs: Vec<MeteredJob>,
}

/// What one job of a build used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeteredJob {
    /// The job.
    pub job_id: String,
    /// `action`, `container` or `unknown`.
    pub kind: String,
    /// Milliseconds its containers ran.
    pub container_ms: i64,
    /// The same, times each container's size.
    pub container_size_ms: i64,
    /// Milliseconds its attempts ran.
    pub run_ms: i64,
}

impl MeteredBuild {
    /// The credits it used, in milliseconds of credit: its containers' size-milliseconds and
    /// its script's milliseconds.
    pub fn credit_ms(&self) -> i64 {
        self.container_size_ms.saturating_add(self.script_ms)
    }
}

/// `GET /api/v1/orgs/{org}/usage`: what an org's builds that ended in a period used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// The org.
    pub org: String,
    /// The first day of the period (UTC), `YYYY-MM-DD`.
    pub from: String,
    /// The last day of the period (UTC), included.
    pub to: String,
    /// The sums over the period's builds.
    pub totals: Figures,
    /// The org's monthly credit limit, if it has one.
    pub credit_limit: Option<i64>,
    /// Credits its builds used this calendar month (UTC), whatever the period.
    pub credits_this_month: f64,
    /// Each build that ended in the period, oldest end first.
    pub builds: Vec<BuildUsage>,
}

/// Usage figures, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Figures {
    /// Seconds containers ran.
    pub container_seconds: f64,
    /// Container seconds times each container's size (n CPUs and 2n GiB).
    pub container_credit_units: f64,
    /// Seconds action jobs ran (in the script process).
    pub action_seconds: f64,
    /// Seconds the script process ran; a suspension is time it did not.
    pub script_seconds: f64,
    /// Credits: container credit units plus script seconds.
    pub credits: f64,
}

impl Figures {
    /// A build's figures.
    pub fn of(build: &MeteredBuild) -> Figures {
        Figures {
            container_seconds: seconds(build.container_ms),
            container_credit_units: seconds(build.container_size_ms),
            action_seconds: seconds(build.action_ms),
            script_seconds: seconds(build.script_ms),
            credits: seconds(build.credit_ms()),
        }
    }

    /// Adds `other` to these.
    pub fn add(&mut self, other: &Figures) {
        self.container_seconds += other.container_seconds;
        self.container_credit_units += other.container_credit_units;
        self.action_seconds += other.action_seconds;
        self.script_seconds += other.script_seconds;
        self.credits += other.credits;
    }
}

/// What one build used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuildUsage {
    /// The build's id.
    pub build_id: String,
    /// Its repository.
    pub repo: String,
    /// Its number in the repository.
    pub number: i64,
    /// When it ended, in milliseconds since the Unix epoch.
    pub ended_ms: i64,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// Each of its jobs' figures.
    pub jobs: Vec<JobUsage>,
}

/// What one job used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobUsage {
    /// The job's id.
    pub job_id: String,
    /// `action` or `container` (`unknown` if the plan did not say).
    pub kind: String,
    /// Seconds its containers ran (a container job's, or an action job's `ctx.run` steps).
    pub container_seconds: f64,
    /// Container seconds times each container's size.
    pub container_credit_units: f64,
    /// Seconds its attempts ran.
    pub run_seconds: f64,
}

impl From<&MeteredJob> for JobUsage {
    fn from(job: &MeteredJob) -> JobUsage {
        JobUsage {
            job_id: job.job_id.clone(),
            kind: job.kind.clone(),
            container_seconds: seconds(job.container_ms),
            container_credit_units: seconds(job.container_size_ms),
            run_seconds: seconds(job.run_ms),
        }
    }
}

/// `PUT /api/v1/orgs/{org}/credits`: an org's monthly credit limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreditLimit {
    /// Credits the org's builds may use per calendar month (UTC); `null`: no limit.
    pub monthly_limit: Option<i64>,
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

const DAY_MS: i64 = 86_400_000;

/// The day `YYYY-MM-DD` (UTC) as milliseconds since the Unix epoch at its start.
///
/// ```
/// use monkeyci_server::usage::{day_start_ms, day_name};
///
/// assert_eq!(day_start_ms("1970-01-02"), Ok(86_400_000));
/// assert_eq!(day_name(day_start_ms("2024-02-29").unwrap()), "2024-02-29");
/// assert!(day_start_ms("2023-02-29").is_err());
/// ```
pub fn day_start_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a date: write YYYY-MM-DD");
    let mut parts = text.trim().splitn(3, '-');
    let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok()).ok_or_else(bad);
    let (year, month, day) = (next()?, next()?, next()?);
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad());
    }
    Ok(days_from_civil(year, month, day) * DAY_MS)
}

/// The UTC day of `ms`, as `YYYY-MM-DD`.
pub fn day_name(ms: i64) -> String {
    let (year, month, day) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{year:04}-{month:02}-{day:02}")
}

/// The start of the UTC calendar month of `ms`, in milliseconds.
///
/// ```
/// use monkeyci_server::usage::{day_start_ms, month_start_ms};
///
/// let day = day_start_ms("2026-12-02").unwrap();
/// assert_eq!(month_start_ms(day + 3_600_000), day_start_ms("2026-12-01").unwrap());
/// ```
pub fn month_start_ms(ms: i64) -> i64 {
    let (year, month, _) = civil_from_days(ms.div_euclid(DAY_MS));
    days_from_civil(year, month, 1) * DAY_MS
}

/// The start of the day after `ms`'s UTC day.
pub fn next_day_ms(ms: i64) -> i64 {
    (ms.div_euclid(DAY_MS) + 1) * DAY_MS
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a number of days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_over_four_centuries() {
        for days in (0..146_097 * 2).step_by(37) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_start_ms("2000-03-01").map(day_name), Ok("2000-03-01".to_owned()));
        for bad in ["2026-13-01", "2026-04-31", "yesterday", "2026-1", "1969-12-31"] {
            assert!(day_start_ms(bad).is_err(), "{bad}");
        }
    }
}
