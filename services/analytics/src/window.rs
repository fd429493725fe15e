//! Event-time windows of one series: tumbling or hopping, aligned to the epoch plus an offset.
//!
//! Readings are kept in panes as wide as the greatest common divisor of the window's size and
//! step, so each reading updates one pane however many windows overlap it; a window is the
//! merge of its panes when it closes.
//!
//! With a time zone, windows are laid out on the zone's wall clock rather than on UTC:
//! a reading's time is first read as local time (its *axis* time), and the window edges
//! are turned back into instants when they are compared with the watermark or reported.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, LocalResult, Offset, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sinter_core::Timestamp;
use sinter_core::solution::Window;

use crate::stats::{RunningStats, Summary};

/// A window's shape in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowShape {
    size: i64,
    every: i64,
    offset: i64,
    pane: i64,
    lateness: i64,
    /// The wall clock the windows follow; UTC when `None`.
    zone: Option<Tz>,
}

const DAY: i64 = 86_400 * 1_000_000;

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl WindowShape {
    /// The shape of a Solution's window.
    // Limitation: in a zone's repeated hour (clocks set back), readings of both passes fall
    // in the same local window; an hourly local window there holds two hours of readings.
    pub fn new(window: &Window) -> Self {
        let size = micros(window.size);
        let every = micros(window.every).min(size);
        let offset = i64::try_from(window.offset.as_micros()).unwrap_or(0) % every;
        WindowShape {
            size,
            every,
            offset,
            pane: gcd(size, every),
            lateness: i64::try_from(window.allowed_lateness.as_micros()).unwrap_or(i64::MAX),
            zone: window.time_zone.filter(|zone| *zone != Tz::UTC),
        }
    }

    /// An instant (UTC microseconds) as the windows count time: the zone's wall clock
    /// read as if it were UTC, or the instant itself without a zone.
    pub fn to_axis(&self, t: i64) -> i64 {
        let Some(zone) = self.zone else {
            return t;
        };
        let Some(utc) = DateTime::from_timestamp_micros(t) else {
            return t;
        };
        let offset = zone.offset_from_utc_datetime(&utc.naive_utc()).fix();
        t.saturating_add(i64::from(offset.local_minus_utc()) * 1_000_000)
    }

    /// The instant at which the wall clock reads `axis`: of a time shown twice (clocks set
    /// back), the later when `latest`, else the earlier; a time the clocks skipped is read
    /// with the offset before the change, as the moment that far past the jump.
    pub fn from_axis(&self, axis: i64, latest: bool) -> i64 {
        let Some(zone) = self.zone else {
            return axis;
        };
        let Some(wall) = DateTime::from_timestamp_micros(axis) else {
            return axis;
        };
        match zone.from_local_datetime(&wall.naive_utc()) {
            LocalResult::Single(at) => at.timestamp_micros(),
            LocalResult::Ambiguous(early, late) => {
                if latest { late } else { early }.timestamp_micros()
            }
            LocalResult::None => {
                // Zones change offset months apart: a day earlier the old offset applied.
                let day_before = DateTime::from_timestamp_micros(axis - DAY).unwrap_or(wall);
                let before = zone.offset_from_utc_datetime(&day_before.naive_utc()).fix();
                axis - i64::from(before.local_minus_utc()) * 1_000_000
            }
        }
    }

    /// The latest aligned point at or before `t` for a grid of `step` shifted by the offset.
    fn align(&self, t: i64, step: i64) -> i64 {
        t - (t - self.offset).rem_euclid(step)
    }

    /// The start of the earliest window that contains `t`.
    pub fn first_window_containing(&self, t: i64) -> i64 {
        self.align(t.saturating_sub(self.size), self.every) + self.every
    }

    /// The start of the latest window that contains `t`.
    pub fn last_window_containing(&self, t: i64) -> i64 {
        self.align(t, self.every)
    }

    pub fn allowed_lateness(&self) -> i64 {
        self.lateness
    }
}

/// One closed window's statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClosedWindow {
    #[serde(with = "crate::stats::micros")]
    pub start: Timestamp,
    #[serde(with = "crate::stats::micros")]
    pub end: Timestamp,
    pub summary: Summary,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pane {
    start: i64,
    stats: RunningStats,
}

/// Where a reading went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Into at least one open window.
    Open,
    /// Every window that would hold it has closed.
    Late,
}

/// The open panes of one series and the next window due to close.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WindowState {
    panes: VecDeque<Pane>,
    /// Windows that start before this have closed; `None` before the first closes.
    closed_until: Option<i64>,
    /// Readings refused as late, since the series began.
    pub late: u64,
    /// Late readings since the last window closed, reported with it.
    late_since_close: u64,
}

impl WindowState {
    /// Add a reading at `event_time` unless every window holding it has closed by `watermark`
    /// (the partition's event-time progress minus the allowed lateness).
    pub fn add(
        &mut self,
        shape: &WindowShape,
        value: f64,
        event_time: Timestamp,
        watermark: i64,
    ) -> Placement {
        let t = shape.to_axis(event_time.as_micros());
        let last_start = shape.last_window_containing(t);
        let closed_by = self.closed_until.unwrap_or(i64::MIN);
        let last_end = shape.from_axis(last_start.saturating_add(shape.size), true);
        if last_end <= watermark || last_start < closed_by {
            self.late += 1;
            self.late_since_close += 1;
            return Placement::Late;
        }
        let pane_start = shape.align(t, shape.pane);
        let position = self.panes.iter().rposition(|pane| pane.start <= pane_start);
        match position {
            Some(index) if self.panes[index].start == pane_start => {
                self.panes[index].stats.add(value, event_time);
            }
            _ => {
                let mut stats = RunningStats::default();
                stats.add(value, event_time);
                let at = position.map_or(0, |index| index + 1);
                self.panes.insert(
                    at,
                    Pane {
                        start: pane_start,
                        stats,
                    },
                );
            }
        }
        Placement::Open
    }

    /// Close every window that ends at or before `watermark`, oldest first.
    pub fn close(&mut self, shape: &WindowShape, watermark: i64) -> Vec<ClosedWindow> {
        let mut closed = Vec::new();
        while let Some(earliest) = self.panes.front().map(|pane| pane.start) {
            // The next window that holds a reading; empty ones are skipped.
            let start = shape
                .first_window_containing(earliest)
                .max(self.closed_until.unwrap_or(i64::MIN));
            let end = start + shape.size;
            if shape.from_axis(end, true) > watermark {
                break;
            }
            let mut stats = RunningStats::default();
            for pane in self.panes.iter().take_while(|pane| pane.start < end) {
                stats.merge(&pane.stats);
            }
            let next = start + shape.every;
            while self.panes.front().is_some_and(|pane| pane.start < next) {
                self.panes.pop_front();
            }
            self.closed_until = Some(next);
            if let Some(mut summary) = stats.summary() {
                summary.late = std::mem::take(&mut self.late_since_close);
                closed.push(ClosedWindow {
                    start: Timestamp::from_micros(shape.from_axis(start, false)),
                    end: Timestamp::from_micros(shape.from_axis(end, true)),
                    summary,
                });
            }
        }
        closed
    }

    /// The end of the next window that will close, if any reading is open.
    pub fn next_end(&self, shape: &WindowShape) -> Option<i64> {
        let earliest = self.panes.front()?.start;
        let start = shape
            .first_window_containing(earliest)
            .max(self.closed_until.unwrap_or(i64::MIN));
        Some(shape.from_axis(start.saturating_add(shape.size), true))
    }

    /// Statistics of the readings in open windows so far, for queries.
    pub fn open_summary(&self) -> Option<Summary> {
        let mut stats = RunningStats::default();
        for pane in &self.panes {
            stats.merge(&pane.stats);
        }
        stats.summary()
    }

    /// Bytes this state holds on the heap, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.panes.capacity() * std::mem::size_of::<Pane>()
            + self
                .panes
                .iter()
                .map(|pane| pane.stats.heap_bytes())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(size: u64, every: u64, offset: u64, lateness: u64) -> WindowShape {
        WindowShape::new(&Window {
            size: Duration::from_secs(size),
            every: Duration::from_secs(every),
            allowed_lateness: Duration::from_secs(lateness),
            offset: Duration::from_secs(offset),
            time_zone: None,
        })
    }

    /// A daily window on the wall clock of `zone`.
    fn daily_in(zone: Tz) -> WindowShape {
        WindowShape::new(&Window {
            size: Duration::from_secs(86_400),
            every: Duration::from_secs(86_400),
            allowed_lateness: Duration::ZERO,
            offset: Duration::ZERO,
            time_zone: Some(zone),
        })
    }

    /// Seconds since the epoch of a UTC time given as `YYYY-MM-DDTHH:MM:SSZ`.
    fn utc(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .expect("an RFC 3339 time")
            .timestamp()
    }

    /// The windows one reading at `reading` gives, closed by a watermark far after it.
    fn closed_around(shape: &WindowShape, reading: i64) -> Vec<(i64, i64, u64)> {
        let mut state = WindowState::default();
        assert_eq!(
            state.add(shape, 1.0, at(reading), i64::MIN),
            Placement::Open
        );
        state
            .close(shape, (reading + 3 * 86_400) * S)
            .iter()
            .map(|w| {
                (
                    w.start.as_micros() / S,
                    w.end.as_micros() / S,
                    w.summary.count,
                )
            })
            .collect()
    }

    #[test]
    fn a_zoned_daily_window_runs_from_local_midnight_to_local_midnight() {
        let berlin = daily_in(chrono_tz::Europe::Berlin);
        // A winter day: 00:00 CET is 23:00 UTC the day before.
        assert_eq!(
            closed_around(&berlin, utc("2026-01-15T12:00:00Z")),
            [(utc("2026-01-14T23:00:00Z"), utc("2026-01-15T23:00:00Z"), 1)]
        );
        // 00:30 local on 15 January is still 14 January in UTC, but the 15th in Berlin.
        assert_eq!(
            closed_around(&berlin, utc("2026-01-14T23:30:00Z")),
            [(utc("2026-01-14T23:00:00Z"), utc("2026-01-15T23:00:00Z"), 1)]
        );
        // Clocks go forward on 29 March 2026: that day has 23 hours.
        assert_eq!(
            closed_around(&berlin, utc("2026-03-29T12:00:00Z")),
            [(utc("2026-03-28T23:00:00Z"), utc("2026-03-29T22:00:00Z"), 1)]
        );
        // Clocks go back on 25 October 2026: that day has 25 hours, and a reading in the
        // repeated hour belongs to it.
        let long_day = [(utc("2026-10-24T22:00:00Z"), utc("2026-10-25T23:00:00Z"), 1)];
        assert_eq!(
            closed_around(&berlin, utc("2026-10-25T00:30:00Z")),
            long_day
        );
        assert_eq!(
            closed_around(&berlin, utc("2026-10-25T01:30:00Z")),
            long_day
        );
        // Without a zone, days are UTC days.
        assert_eq!(
            closed_around(&shape(86_400, 86_400, 0, 0), utc("2026-03-29T12:00:00Z")),
            [(utc("2026-03-29T00:00:00Z"), utc("2026-03-30T00:00:00Z"), 1)]
        );
    }

    #[test]
    fn a_zoned_window_waits_for_the_local_end_of_its_day() {
        let tokyo = daily_in(chrono_tz::Asia::Tokyo);
        let mut state = WindowState::default();
        let noon = utc("2026-06-01T03:00:00Z");
        state.add(&tokyo, 1.0, at(noon), i64::MIN);
        // 23:59 in Tokyo: the local day is not over.
        assert!(
            state
                .close(&tokyo, utc("2026-06-01T14:59:00Z") * S)
                .is_empty()
        );
        assert_eq!(
            state.next_end(&tokyo),
            Some(utc("2026-06-01T15:00:00Z") * S)
        );
        // Local midnight, nine hours before the UTC day would end.
        let closed = state.close(&tokyo, utc("2026-06-01T15:00:00Z") * S);
        assert_eq!(closed.len(), 1);
        // A reading of that local day is now late.
        assert_eq!(
            state.add(&tokyo, 2.0, at(utc("2026-06-01T14:00:00Z")), i64::MIN),
            Placement::Late
        );
    }

    #[test]
    fn a_skipped_wall_time_is_read_after_the_jump() {
        let berlin = daily_in(chrono_tz::Europe::Berlin);
        // 02:30 on 29 March 2026 does not exist in Berlin: read with CET it is 01:30 UTC.
        let wall = utc("2026-03-29T02:30:00Z") * S;
        assert_eq!(
            berlin.from_axis(wall, false),
            utc("2026-03-29T01:30:00Z") * S
        );
        assert_eq!(
            berlin.to_axis(utc("2026-03-29T01:30:00Z") * S),
            utc("2026-03-29T03:30:00Z") * S
        );
    }

    const S: i64 = 1_000_000;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch() {
        let shape = shape(60, 60, 0, 0);
        let mut state = WindowState::default();
        // 1_000_000_030 s is 30 s into the minute starting at 1_000_000_020 (a multiple of 60).
        for (secs, value) in [
            (1_000_000_030, 1.0),
            (1_000_000_050, 3.0),
            (1_000_000_079, 5.0),
        ] {
            assert_eq!(
                state.add(&shape, value, at(secs), i64::MIN),
                Placement::Open
            );
        }
        let closed = state.close(&shape, 1_000_000_080 * S);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].start, at(1_000_000_020));
        assert_eq!(closed[0].end, at(1_000_000_080));
        assert_eq!(closed[0].summary.count, 3);
        assert_eq!(closed[0].summary.mean, 3.0);
        assert_eq!(closed[0].summary.last, 5.0);
    }

    #[test]
    fn offset_shifts_the_window_starts() {
        let shape = shape(3600, 3600, 900, 0);
        let mut state = WindowState::default();
        state.add(&shape, 1.0, at(3600 * 10 + 100), i64::MIN);
        state.add(&shape, 2.0, at(3600 * 10 + 1000), i64::MIN);
        let closed = state.close(&shape, i64::MAX);
        let starts: Vec<i64> = closed.iter().map(|w| w.start.as_micros() / S).collect();
        assert_eq!(starts, [3600 * 9 + 900, 3600 * 10 + 900]);
    }

    #[test]
    fn hopping_windows_overlap() {
        // Size 60 s every 20 s: a reading at 70 s is in the windows starting 20, 40 and 60.
        let shape = shape(60, 20, 0, 0);
        let mut state = WindowState::default();
        state.add(&shape, 10.0, at(70), i64::MIN);
        state.add(&shape, 20.0, at(95), i64::MIN);
        let closed = state.close(&shape, 200 * S);
        let got: Vec<(i64, u64, f64)> = closed
            .iter()
            .map(|w| (w.start.as_micros() / S, w.summary.count, w.summary.mean))
            .collect();
        assert_eq!(
            got,
            [(20, 1, 10.0), (40, 2, 15.0), (60, 2, 15.0), (80, 1, 20.0)]
        );
    }

    #[test]
    fn a_late_reading_inside_the_lateness_updates_its_window() {
        // Window [0, 60) with 30 s allowed lateness: the watermark is the event-time
        // progress minus 30 s.
        let shape = shape(60, 60, 0, 30);
        let mut state = WindowState::default();
        state.add(&shape, 1.0, at(10), i64::MIN);
        let progress = 80 * S;
        let watermark = progress - shape.allowed_lateness();
        assert!(state.close(&shape, watermark).is_empty());
        // 70 s after its window began, the reading at 50 s still counts.
        assert_eq!(state.add(&shape, 3.0, at(50), watermark), Placement::Open);
        let closed = state.close(&shape, 95 * S - shape.allowed_lateness());
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].summary.count, closed[0].summary.mean), (2, 2.0));
        // Past the lateness it is refused, counted, and reported with the next window.
        let watermark = 95 * S - shape.allowed_lateness();
        assert_eq!(state.add(&shape, 9.0, at(59), watermark), Placement::Late);
        assert_eq!(state.late, 1);
        state.add(&shape, 4.0, at(70), watermark);
        let closed = state.close(&shape, i64::MAX);
        assert_eq!((closed[0].summary.count, closed[0].summary.late), (1, 1));
    }

    #[test]
    fn a_window_straddled_by_a_late_reading_keeps_its_open_part() {
        // Hopping 60 s every 30 s. At watermark 60 s, [-30,30) and [0,60) have closed and
        // [30,90) is open. A reading at 45 s belongs to [0,60) and [30,90): it is not late,
        // and counts only in the open one.
        let shape = shape(60, 30, 0, 0);
        let mut state = WindowState::default();
        state.add(&shape, 1.0, at(10), i64::MIN);
        state.add(&shape, 1.0, at(65), i64::MIN);
        let closed = state.close(&shape, 60 * S);
        assert_eq!(
            closed.iter().map(|w| w.summary.count).collect::<Vec<_>>(),
            [1, 1]
        );
        assert_eq!(state.add(&shape, 7.0, at(45), 60 * S), Placement::Open);
        let closed = state.close(&shape, i64::MAX);
        let got: Vec<(i64, u64)> = closed
            .iter()
            .map(|w| (w.start.as_micros() / S, w.summary.count))
            .collect();
        assert_eq!(got, [(30, 2), (60, 1)]);
    }

    #[test]
    fn two_readings_with_the_same_time_both_count() {
        let shape = shape(60, 60, 0, 0);
        let mut state = WindowState::default();
        state.add(&shape, 1.0, at(5), i64::MIN);
        state.add(&shape, 2.0, at(5), i64::MIN);
        let closed = state.close(&shape, i64::MAX);
        assert_eq!(closed[0].summary.count, 2);
    }

    #[test]
    fn gaps_are_skipped_without_empty_windows() {
        let shape = shape(60, 60, 0, 0);
        let mut state = WindowState::default();
        state.add(&shape, 1.0, at(5), i64::MIN);
        state.add(&shape, 2.0, at(7 * 24 * 3600), i64::MIN);
        let closed = state.close(&shape, i64::MAX);
        assert_eq!(closed.len(), 2);
    }
}
