//! The logfile: appended to, each line prefixed with a UTC timestamp (stderr
//! needs none: the journal adds its own), and reopened by its path so that
//! logrotate can move it away.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::LogError;

pub(super) struct LogFile {
    path: PathBuf,
    file: File,
}

impl LogFile {
    pub(super) fn open(path: PathBuf) -> Result<LogFile, LogError> {
        let file_error = |source| LogError::File {
            path: path.clone(),
            source,
        };
        // absolute now, so that a reopen finds the same file whatever the
        // working directory has become by then
        let absolute = std::path::absolute(&path).map_err(file_error)?;
        let file = append(&absolute).map_err(file_error)?;
        Ok(LogFile {
            path: absolute,
            file,
        })
    }

    /// On failure the old file stays in use.
    pub(super) fn reopen(&mut self) -> Result<(), LogError> {
        self.file = append(&self.path).map_err(|source| LogError::File {
            path: self.path.clone(),
            source,
        })?;
        Ok(())
    }

    pub(super) fn write_line(&mut self, line: &str) {
        // stamped under the caller's lock, so that times in the file only rise
        let stamped = format!("{} {line}", timestamp(SystemTime::now()));
        // O_APPEND and one write per line: whole lines, even beside forked
        // children that share this file. A failed write (a full disk) loses
        // this line and nothing else.
        let _ = self.file.write_all(stamped.as_bytes());
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// RFC 3339 in UTC with milliseconds: `2026-11-25T13:40:00.123Z`.
fn timestamp(time: SystemTime) -> String {
    // a clock set before 1970 is wrong anyway; the epoch is as good a lie as any
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        since_epoch.subsec_millis(),
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01: Howard Hinnant's
/// `civil_from_days`, for non-negative days only. Eras are 400-year cycles
/// counted from 0000-03-01, so that leap days fall at the end of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64, millis: u64) -> String {
        timestamp(UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis))
    }

    #[test]
    fn timestamps_are_utc_rfc3339_with_milliseconds() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_795_614_000, 123), "2026-11-25T13:40:00.123Z");
        assert_eq!(at(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
        assert_eq!(at(253_402_300_799, 7), "9999-12-31T23:59:59.007Z");
    }

    #[test]
    fn leap_days_and_century_rules() {
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_709_164_800, 0), "2024-02-29T00:00:00.000Z");
        // 2100 is not a leap year: 28 February is followed by 1 March
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn every_day_follows_the_one_before() {
        // walks 1970..2400 day by day against a plain calendar
        let month_lengths = |year: u64| {
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ]
        };
        let (mut year, mut month, mut day) = (1970, 1, 1);
        for days in 0..156_000 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            day += 1;
            if day > month_lengths(year)[month as usize - 1] {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn a_clock_before_1970_reads_as_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(timestamp(before), "1970-01-01T00:00:00.000Z");
    }
}
