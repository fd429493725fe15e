//! The in-process core: per-partition state of every series, fed readings and timer ticks.
//!
//! One [`PartitionState`] per bus partition holds the partition's event-time progress and
//! the windows and detectors of each device and metric on it. Everything here is pure: time
//! comes in as arguments, results go out as [`Output`]s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sinter_core::Timestamp;
use sinter_core::id;
use sinter_core::solution::{AnalyticsRule, DetectorKind, Severity};

use crate::detect::anomaly::{AnomalyState, AnomalyTuning};
use crate::detect::rate::RateState;
use crate::detect::silence::SilenceState;
use crate::detect::threshold::ThresholdState;
use crate::detect::{Change, OpenIncident};
use crate::stats::Summary;
use crate::window::{ClosedWindow, Placement, WindowShape, WindowState};

/// How far ahead of the clock a reading may move its partition's event-time progress: none,
/// so a device with a clock set years ahead closes nobody's windows early. (Its own reading
/// waits in an open window until the clock catches up.)
pub const DEFAULT_MAX_FUTURE: Duration = Duration::ZERO;

/// A reading's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Number(f64),
    Text(String),
}

/// One reading, as analytics sees it.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    pub device_id: &'a str,
    pub device_type: &'a str,
    pub metric: &'a str,
    pub value: &'a Value,
    pub event_time: Timestamp,
}

/// A window that closed.
#[derive(Clone, Debug, PartialEq)]
pub struct InsightOut {
    pub device_id: String,
    pub device_type: String,
    pub metric: String,
    pub window: ClosedWindow,
}

/// A detection raised or cleared.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionOut {
    pub incident_id: String,
    pub raised: bool,
    pub device_id: String,
    pub device_type: String,
    pub metric: String,
    /// `threshold`, `rate-of-change`, `anomaly` or `silence`.
    pub detector: &'static str,
    pub detector_name: String,
    pub severity: Severity,
    pub score: f64,
    pub value: f64,
    pub event_time: Timestamp,
    pub evidence: Option<ClosedWindow>,
    pub message: String,
}

/// A reading that came after every window that would hold it had closed.
#[derive(Clone, Debug, PartialEq)]
pub struct LateOut {
    pub device_id: String,
    pub metric: String,
    pub event_time: Timestamp,
    /// The series' watermark when it arrived.
    pub watermark: Timestamp,
}

/// What the core produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Insight(InsightOut),
    Detection(DetectionOut),
    Late(LateOut),
}

/// The Solution's analytics rules, compiled for the core.
#[derive(Clone, Debug)]
pub struct Rules {
    solution: String,
    rules: Arc<Vec<(AnalyticsRule, WindowShape)>>,
    pub tuning: AnomalyTuning,
    pub max_future: Duration,
}

impl Rules {
    /// Compile `spec.analytics` of the Solution named `solution` (`namespace/name`).
    pub fn new(solution: impl Into<String>, rules: &[AnalyticsRule]) -> Self {
        Rules {
            solution: solution.into(),
            rules: Arc::new(
                rules
                    .iter()
                    .map(|rule| (rule.clone(), WindowShape::new(&rule.window)))
                    .collect(),
            ),
            tuning: AnomalyTuning::default(),
            max_future: DEFAULT_MAX_FUTURE,
        }
    }

    fn applying(&self, device_type: &str, metric: &str) -> Vec<usize> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, (rule, _))| rule.applies_to(device_type, metric))
            .map(|(index, _)| index)
            .collect()
    }
}

/// One detector's state on one series, with its open incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DetectorState {
    Threshold(ThresholdState),
    Rate(RateState),
    Silence(SilenceState),
    /// Boxed: the largest state by far, it would otherwise size every detector's slot.
    Anomaly(Box<AnomalyState>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Watch {
    state: DetectorState,
    incident: Option<OpenIncident>,
}

/// One rule applied to one series.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RuleState {
    rule: usize,
    window: WindowState,
    watches: Vec<Watch>,
    last_window: Option<ClosedWindow>,
}

/// Everything known about one device's metric.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeriesState {
    device_type: String,
    /// The latest value by event time, and that time in microseconds.
    latest: Option<(i64, Value)>,
    rules: Vec<RuleState>,
}

/// The state of one partition: its progress in event time and its series.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PartitionState {
    /// The largest event time seen, each capped at the clock plus the allowed future.
    progress: Option<i64>,
    /// The earliest time at which some window may be due to close.
    next_sweep: Option<i64>,
    /// Device id, then metric.
    devices: HashMap<String, HashMap<String, SeriesState>>,
    /// Late readings, since the state was made.
    pub late_total: u64,
}

/// A series as a query sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesView {
    pub metric: String,
    pub device_type: String,
    pub latest: Option<(Timestamp, Value)>,
    pub last_window: Option<ClosedWindow>,
    pub open_window: Option<Summary>,
    pub anomaly_score: Option<f64>,
    pub open_incidents: Vec<IncidentView>,
}

/// An open incident as a query sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentView {
    pub incident_id: String,
    pub device_id: String,
    pub metric: String,
    pub detector: &'static str,
    pub detector_name: String,
    pub severity: Severity,
    pub raised_at: Timestamp,
    pub value: f64,
}

fn kind_name(kind: &DetectorKind) -> &'static str {
    kind.as_str()
}

impl PartitionState {
    /// Apply one reading that arrived at `now`.
    pub fn ingest(&mut self, rules: &Rules, sample: Sample<'_>, now: Timestamp) -> Vec<Output> {
        let mut out = Vec::new();
        let t = sample.event_time.as_micros();
        let cap = now.saturating_add(rules.max_future).as_micros();
        let progress = t.min(cap).max(self.progress.unwrap_or(i64::MIN));
        self.progress = Some(progress);

        let device = match self.devices.get_mut(sample.device_id) {
            Some(device) => device,
            None => self.devices.entry(sample.device_id.to_owned()).or_default(),
        };
        let series = match device.get_mut(sample.metric) {
            Some(series) => series,
            None => device
                .entry(sample.metric.to_owned())
                .or_insert_with(|| new_series(rules, sample.device_type, sample.metric)),
        };
        if series.latest.as_ref().is_none_or(|(time, _)| t >= *time) {
            series.latest = Some((t, sample.value.clone()));
        }
        let number = match sample.value {
            Value::Number(number) => Some(*number),
            Value::Text(_) => None,
        };
        let mut late = false;
        for rule_state in &mut series.rules {
            let (rule, shape) = &rules.rules[rule_state.rule];
            let watermark = progress.saturating_sub(shape.allowed_lateness());
            if let Some(value) = number
                && rule_state
                    .window
                    .add(shape, value, sample.event_time, watermark)
                    == Placement::Late
                && !late
            {
                late = true;
                out.push(Output::Late(LateOut {
                    device_id: sample.device_id.to_owned(),
                    metric: sample.metric.to_owned(),
                    event_time: sample.event_time,
                    watermark: Timestamp::from_micros(watermark),
                }));
            }
            let due = rule_state.next_due(shape);
            self.next_sweep = min_opt(self.next_sweep, due);
            for (index, detector) in rule.detectors.iter().enumerate() {
                let watch = &mut rule_state.watches[index];
                let change = match (&mut watch.state, &detector.kind) {
                    (DetectorState::Silence(state), _) => state.on_reading(now),
                    // Limitation: the anomaly detector scores every reading; the rule's
                    // `aggregate` (a window summary to judge) is not used.
                    (DetectorState::Anomaly(state), DetectorKind::Anomaly(anomaly)) => match number
                    {
                        Some(value) if !late => {
                            state.on_reading(anomaly, &rules.tuning, value, sample.event_time)
                        }
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(change) = change {
                    let context = Context {
                        rules,
                        device_id: sample.device_id,
                        device_type: &series.device_type,
                        metric: sample.metric,
                    };
                    let evidence = rule_state.last_window.clone();
                    out.push(Output::Detection(context.transition(
                        watch,
                        detector,
                        change,
                        sample.event_time,
                        evidence,
                    )));
                }
            }
        }
        if late {
            self.late_total += 1;
        }
        if self.next_sweep.is_some_and(|due| due <= progress) {
            self.sweep(rules, &mut out);
        }
        out
    }

    /// Close every window that is due and run the window detectors on it.
    // Limitation: windows close only when a reading moves the partition's event-time
    // progress; on a partition that goes quiet, the last windows stay open until one comes.
    fn sweep(&mut self, rules: &Rules, out: &mut Vec<Output>) {
        let Some(progress) = self.progress else {
            return;
        };
        let mut next_sweep = None;
        for (device_id, metrics) in &mut self.devices {
            for (metric, series) in metrics.iter_mut() {
                for rule_state in &mut series.rules {
                    let (rule, shape) = &rules.rules[rule_state.rule];
                    let watermark = progress.saturating_sub(shape.allowed_lateness());
                    for window in rule_state.window.close(shape, watermark) {
                        let context = Context {
                            rules,
                            device_id,
                            device_type: &series.device_type,
                            metric,
                        };
                        for (index, detector) in rule.detectors.iter().enumerate() {
                            let watch = &mut rule_state.watches[index];
                            let change = match (&mut watch.state, &detector.kind) {
                                (DetectorState::Threshold(state), DetectorKind::Threshold(t)) => {
                                    state.on_window(t, &window)
                                }
                                (DetectorState::Rate(state), DetectorKind::RateOfChange(r)) => {
                                    state.on_window(r, &window)
                                }
                                _ => None,
                            };
                            if let Some(change) = change {
                                out.push(Output::Detection(context.transition(
                                    watch,
                                    detector,
                                    change,
                                    window.end,
                                    Some(window.clone()),
                                )));
                            }
                        }
                        out.push(Output::Insight(InsightOut {
                            device_id: device_id.clone(),
                            device_type: series.device_type.clone(),
                            metric: metric.clone(),
                            window: window.clone(),
                        }));
                        rule_state.last_window = Some(window);
                    }
                    next_sweep = min_opt(next_sweep, rule_state.next_due(shape));
                }
            }
        }
        self.next_sweep = next_sweep;
    }

    /// Run the timers at `now`: silence detectors raise for series that went quiet.
    pub fn tick(&mut self, rules: &Rules, now: Timestamp) -> Vec<Output> {
        let mut out = Vec::new();
        for (device_id, metrics) in &mut self.devices {
            for (metric, series) in metrics.iter_mut() {
                for rule_state in &mut series.rules {
                    let (rule, _) = &rules.rules[rule_state.rule];
                    for (index, detector) in rule.detectors.iter().enumerate() {
                        let watch = &mut rule_state.watches[index];
                        let (DetectorState::Silence(state), DetectorKind::Silence(silence)) =
                            (&mut watch.state, &detector.kind)
                        else {
                            continue;
                        };
                        if let Some((change, at)) = state.on_tick(silence, now) {
                            let context = Context {
                                rules,
                                device_id,
                                device_type: &series.device_type,
                                metric,
                            };
                            let evidence = rule_state.last_window.clone();
                            out.push(Output::Detection(
                                context.transition(watch, detector, change, at, evidence),
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// The series of one device, for queries.
    pub fn device(&self, rules: &Rules, device_id: &str) -> Vec<SeriesView> {
        let Some(metrics) = self.devices.get(device_id) else {
            return Vec::new();
        };
        let mut views: Vec<SeriesView> = metrics
            .iter()
            .map(|(metric, series)| series.view(rules, device_id, metric))
            .collect();
        views.sort_by(|a, b| a.metric.cmp(&b.metric));
        views
    }

    /// Every open incident in the partition.
    pub fn open_incidents(&self, rules: &Rules) -> Vec<IncidentView> {
        let mut incidents = Vec::new();
        for (device_id, metrics) in &self.devices {
            for (metric, series) in metrics {
                incidents.extend(series.view(rules, device_id, metric).open_incidents);
            }
        }
        incidents
    }

    /// The number of device+metric series held.
    pub fn series_count(&self) -> usize {
        self.devices.values().map(HashMap::len).sum()
    }

    /// Bytes held per series on average, counting the maps' entries and the heap.
    pub fn approximate_bytes(&self) -> usize {
        let mut bytes = std::mem::size_of::<Self>()
            + self.devices.capacity()
                * (std::mem::size_of::<(String, HashMap<String, SeriesState>)>() + 1);
        for (device_id, metrics) in &self.devices {
            bytes += device_id.capacity();
            bytes += metrics.capacity() * (std::mem::size_of::<(String, SeriesState)>() + 1);
            for (metric, series) in metrics {
                bytes += metric.capacity() + series.heap_bytes();
            }
        }
        bytes
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn new_series(rules: &Rules, device_type: &str, metric: &str) -> SeriesState {
    let rule_states = rules
        .applying(device_type, metric)
        .into_iter()
        .map(|index| {
            let (rule, _) = &rules.rules[index];
            RuleState {
                rule: index,
                window: WindowState::default(),
                watches: rule
                    .detectors
                    .iter()
                    .map(|detector| Watch {
                        state: match detector.kind {
                            DetectorKind::Threshold(_) => {
                                DetectorState::Threshold(ThresholdState::default())
                            }
                            DetectorKind::RateOfChange(_) => {
                                DetectorState::Rate(RateState::default())
                            }
                            DetectorKind::Silence(_) => {
                                DetectorState::Silence(SilenceState::default())
                            }
                            DetectorKind::Anomaly(_) => DetectorState::Anomaly(Box::default()),
                        },
                        incident: None,
                    })
                    .collect(),
                last_window: None,
            }
        })
        .collect();
    SeriesState {
        device_type: device_type.to_owned(),
        latest: None,
        rules: rule_states,
    }
}

impl RuleState {
    fn next_due(&self, shape: &WindowShape) -> Option<i64> {
        self.window
            .next_end(shape)
            .map(|end| end.saturating_add(shape.allowed_lateness()))
    }
}

impl SeriesState {
    fn view(&self, rules: &Rules, device_id: &str, metric: &str) -> SeriesView {
        let mut open_incidents = Vec::new();
        let mut anomaly_score = None;
        let mut last_window: Option<ClosedWindow> = None;
        let mut open_window = None;
        for rule_state in &self.rules {
            let (rule, _) = &rules.rules[rule_state.rule];
            if last_window.is_none() {
                last_window = rule_state.last_window.clone();
                open_window = rule_state.window.open_summary();
            }
            for (watch, detector) in rule_state.watches.iter().zip(&rule.detectors) {
                if let DetectorState::Anomaly(state) = &watch.state {
                    anomaly_score = Some(state.score);
                }
                if let Some(incident) = &watch.incident {
                    open_incidents.push(IncidentView {
                        incident_id: incident.id.clone(),
                        device_id: device_id.to_owned(),
                        metric: metric.to_owned(),
                        detector: kind_name(&detector.kind),
                        detector_name: detector.name().to_owned(),
                        severity: detector.severity(),
                        raised_at: incident.raised_at,
                        value: incident.value,
                    });
                }
            }
        }
        SeriesView {
            metric: metric.to_owned(),
            device_type: self.device_type.clone(),
            latest: self
                .latest
                .as_ref()
                .map(|(time, value)| (Timestamp::from_micros(*time), value.clone())),
            last_window,
            open_window,
            anomaly_score,
            open_incidents,
        }
    }

    fn heap_bytes(&self) -> usize {
        let latest = match &self.latest {
            Some((_, Value::Text(text))) => text.capacity(),
            _ => 0,
        };
        self.device_type.capacity()
            + latest
            + self.rules.capacity() * std::mem::size_of::<RuleState>()
            + self
                .rules
                .iter()
                .map(|rule| {
                    rule.window.heap_bytes()
                        + rule.watches.capacity() * std::mem::size_of::<Watch>()
                        + rule
                            .watches
                            .iter()
                            .filter_map(|w| w.incident.as_ref())
                            .map(|i| i.id.capacity())
                            .sum::<usize>()
                        + rule
                            .watches
                            .iter()
                            .map(|w| match &w.state {
                                DetectorState::Anomaly(state) => {
                                    std::mem::size_of::<AnomalyState>() + state.heap_bytes()
                                }
                                _ => 0,
                            })
                            .sum::<usize>()
                        + rule.last_window.as_ref().map_or(0, |w| {
                            w.summary.quantiles.capacity() * std::mem::size_of::<(f64, f64)>()
                        })
                })
                .sum::<usize>()
    }
}

struct Context<'a> {
    rules: &'a Rules,
    device_id: &'a str,
    device_type: &'a str,
    metric: &'a str,
}

impl Context<'_> {
    /// Turn a detector's change into a detection, opening or closing its incident.
    fn transition(
        &self,
        watch: &mut Watch,
        detector: &sinter_core::solution::Detector,
        change: Change,
        event_time: Timestamp,
        evidence: Option<ClosedWindow>,
    ) -> DetectionOut {
        let name = detector.name();
        let (raised, value, score) = match change {
            Change::Raise { value, score } => (true, value, score),
            Change::Clear { value, score } => (false, value, score),
        };
        let incident_id = if raised {
            let id = id::derive(
                "incident",
                &[
                    self.rules.solution.as_bytes(),
                    self.device_id.as_bytes(),
                    self.metric.as_bytes(),
                    name.as_bytes(),
                    &event_time.as_micros().to_be_bytes(),
                ],
            );
            watch.incident = Some(OpenIncident {
                id: id.clone(),
                raised_at: event_time,
                value,
            });
            id
        } else {
            watch
                .incident
                .take()
                .map(|incident| incident.id)
                .unwrap_or_default()
        };
        let verb = if raised { "raised" } else { "cleared" };
        let message = match &detector.kind {
            DetectorKind::Threshold(_) => format!("{} {} {verb} at {value}", self.metric, name),
            DetectorKind::RateOfChange(rate) => format!(
                "{} changing by {value} per {}s: {name} {verb}",
                self.metric,
                rate.per.as_secs()
            ),
            DetectorKind::Anomaly(_) => {
                format!(
                    "{} anomaly score {score:.3} at value {value}: {name} {verb}",
                    self.metric
                )
            }
            DetectorKind::Silence(_) if raised => {
                format!("no {} reading for {value}s: {name} {verb}", self.metric)
            }
            DetectorKind::Silence(_) => format!("{} reporting again: {name} {verb}", self.metric),
        };
        DetectionOut {
            incident_id,
            raised,
            device_id: self.device_id.to_owned(),
            device_type: self.device_type.to_owned(),
            metric: self.metric.to_owned(),
            detector: kind_name(&detector.kind),
            detector_name: name.to_owned(),
            severity: detector.severity(),
            score,
            value,
            event_time,
            evidence,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLUTION: &str = r#"
apiVersion: sinter.dev/v1alpha1
kind: Solution
metadata: {name: pump-health, namespace: plant-north}
spec:
  devices:
    - type: pump
      metrics:
        - {name: temp, unit: degC, min: -40, max: 200}
  analytics:
    - metric: temp
      window: {size: 1m, allowedLateness: 30s}
      detect:
        - threshold: {above: 85, clearBelow: 80}
        - silence: {after: 10m}
"#;

    fn rules() -> Rules {
        let solution = sinter_core::Solution::from_yaml(SOLUTION).expect("valid Solution");
        Rules::new("plant-north/pump-health", &solution.spec.analytics)
    }

    fn reading(
        state: &mut PartitionState,
        rules: &Rules,
        device: &str,
        secs: i64,
        value: f64,
        now: i64,
    ) -> Vec<Output> {
        let value = Value::Number(value);
        let sample = Sample {
            device_id: device,
            device_type: "pump",
            metric: "temp",
            value: &value,
            event_time: Timestamp::from_secs(secs),
        };
        state.ingest(rules, sample, Timestamp::from_secs(now))
    }

    fn detections(outputs: &[Output]) -> Vec<(&'static str, bool, &str)> {
        outputs
            .iter()
            .filter_map(|output| match output {
                Output::Detection(d) => Some((d.detector, d.raised, d.incident_id.as_str())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_far_future_reading_does_not_close_windows_for_everyone() {
        let rules = rules();
        let mut state = PartitionState::default();
        let now = 1_000_020;
        assert!(reading(&mut state, &rules, "p-1", now - 10, 70.0, now).is_empty());
        // A year ahead: progress moves no further than the clock.
        let out = reading(&mut state, &rules, "p-2", now + 365 * 86_400, 70.0, now);
        let insights = out
            .iter()
            .filter(|o| matches!(o, Output::Insight(_)))
            .count();
        // p-1's window ends at 1_000_020 and may take readings 30 s longer: still open.
        assert_eq!(insights, 0, "{out:?}");
        // p-1 keeps reporting in the present; its readings are not late.
        let out = reading(&mut state, &rules, "p-1", now + 5, 71.0, now + 5);
        assert!(!out.iter().any(|o| matches!(o, Output::Late(_))), "{out:?}");
    }

    #[test]
    fn late_readings_are_reported() {
        let rules = rules();
        let mut state = PartitionState::default();
        reading(&mut state, &rules, "p-1", 10, 70.0, 10);
        reading(&mut state, &rules, "p-1", 200, 70.0, 200);
        let out = reading(&mut state, &rules, "p-1", 20, 70.0, 201);
        assert!(
            matches!(&out[..], [Output::Late(late)] if late.event_time == Timestamp::from_secs(20))
        );
        assert_eq!(state.late_total, 1);
    }

    #[test]
    fn a_restart_in_an_open_incident_neither_raises_again_nor_forgets_it() {
        let rules = rules();
        let mut state = PartitionState::default();
        let mut raised = Vec::new();
        for minute in 0..5 {
            let secs = minute * 60 + 5;
            let out = reading(&mut state, &rules, "p-1", secs, 90.0, secs);
            raised.extend(
                detections(&out)
                    .into_iter()
                    .map(|(k, r, id)| (k, r, id.to_owned())),
            );
        }
        assert_eq!(raised.len(), 1);
        let incident = raised[0].2.clone();
        assert_eq!(state.open_incidents(&rules).len(), 1);

        let stored = serde_json::to_string(&state).expect("serialise");
        let mut restored: PartitionState = serde_json::from_str(&stored).expect("restore");
        let mut later = Vec::new();
        for minute in 5..10 {
            let secs = minute * 60 + 5;
            let value = if minute < 7 { 90.0 } else { 75.0 };
            let out = reading(&mut restored, &rules, "p-1", secs, value, secs);
            later.extend(
                detections(&out)
                    .into_iter()
                    .map(|(k, r, id)| (k, r, id.to_owned())),
            );
        }
        assert_eq!(later, [("threshold", false, incident)]);
    }

    #[test]
    fn silence_raises_on_the_timer_and_clears_on_data() {
        let rules = rules();
        let mut state = PartitionState::default();
        reading(&mut state, &rules, "p-1", 100, 70.0, 100);
        assert!(detections(&state.tick(&rules, Timestamp::from_secs(699))).is_empty());
        let out = state.tick(&rules, Timestamp::from_secs(700));
        let found = detections(&out);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0, found[0].1), ("silence", true));
        let incident = found[0].2.to_owned();
        assert!(detections(&state.tick(&rules, Timestamp::from_secs(900))).is_empty());
        let out = reading(&mut state, &rules, "p-1", 950, 70.0, 950);
        assert_eq!(detections(&out), [("silence", false, incident.as_str())]);
    }

    #[test]
    fn latest_value_is_by_event_time_not_arrival() {
        let rules = rules();
        let mut state = PartitionState::default();
        reading(&mut state, &rules, "p-1", 50, 71.0, 50);
        reading(&mut state, &rules, "p-1", 40, 60.0, 51);
        let view = &state.device(&rules, "p-1")[0];
        assert_eq!(
            view.latest,
            Some((Timestamp::from_secs(50), Value::Number(71.0)))
        );
    }
}
