//! The gRPC API `sinter.analytics.v1.AnalyticsService`: device state, open incidents, and a
//! live stream of detections.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use sinter_proto::analytics::v1 as api;
use sinter_proto::analytics::v1::analytics_service_server::{
    AnalyticsService, AnalyticsServiceServer,
};
use sinter_proto::events::v1 as pb;
use sinter_proto::time::to_proto;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::engine::{IncidentView, Value};
use crate::service::{Shared, SolutionRun};

/// The most incidents one page holds.
const MAX_PAGE: usize = 500;

/// The analytics API over the running service's state.
#[derive(Clone)]
pub struct AnalyticsApi {
    shared: Arc<Shared>,
}

impl AnalyticsApi {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        AnalyticsApi { shared }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> AnalyticsServiceServer<Self> {
        AnalyticsServiceServer::new(self)
    }

    fn solution(&self, name: &str) -> Result<&SolutionRun, Status> {
        if name.is_empty() {
            return Err(Status::invalid_argument(
                "solution: is required (namespace/name)",
            ));
        }
        self.shared
            .solutions
            .iter()
            .find(|run| run.key == name)
            .ok_or_else(|| {
                Status::not_found(format!("solution: {name:?} is not run by this service"))
            })
    }
}

fn incident(view: &IncidentView) -> api::Incident {
    api::Incident {
        incident_id: view.incident_id.clone(),
        device_id: view.device_id.clone(),
        metric: view.metric.clone(),
        detector: convert::detector_kind(view.detector) as i32,
        detector_name: view.detector_name.clone(),
        severity: convert::severity_proto(view.severity) as i32,
        raised_at: Some(to_proto(view.raised_at)),
        value: view.value,
    }
}

type DetectionStream = Pin<Box<dyn Stream<Item = Result<pb::Detection, Status>> + Send>>;

#[tonic::async_trait]
impl AnalyticsService for AnalyticsApi {
    async fn get_device_state(
        &self,
        request: Request<api::GetDeviceStateRequest>,
    ) -> Result<Response<api::DeviceState>, Status> {
        let request = request.into_inner();
        let run = self.solution(&request.solution)?;
        if request.device_id.is_empty() {
            return Err(Status::invalid_argument("device_id: is required"));
        }
        // Limitation: only partitions this instance holds are searched; with several
        // instances, ask the one that owns the device's partition.
        let views = run.each_state(|state| state.device(&run.rules, &request.device_id));
        if views.is_empty() {
            return Err(Status::not_found(format!(
                "device_id: no reading of {:?} has been analysed",
                request.device_id
            )));
        }
        let mut state = api::DeviceState {
            device_id: request.device_id.clone(),
            device_type: views[0].device_type.clone(),
            ..Default::default()
        };
        let mut last_seen = None;
        for view in views {
            let (latest, latest_time) = match &view.latest {
                Some((time, Value::Number(n))) => {
                    (Some(api::metric_state::Latest::Number(*n)), Some(*time))
                }
                Some((time, Value::Text(t))) => (
                    Some(api::metric_state::Latest::Text(t.clone())),
                    Some(*time),
                ),
                None => (None, None),
            };
            last_seen = last_seen.max(latest_time);
            state
                .open_incidents
                .extend(view.open_incidents.iter().map(incident));
            state.metrics.push(api::MetricState {
                metric: view.metric.clone(),
                latest,
                latest_event_time: latest_time.map(to_proto),
                last_window: view.last_window.as_ref().map(convert::window_stats),
                anomaly_score: view.anomaly_score.unwrap_or_default(),
            });
        }
        state.last_seen = last_seen.map(to_proto);
        Ok(Response::new(state))
    }

    async fn list_incidents(
        &self,
        request: Request<api::ListIncidentsRequest>,
    ) -> Result<Response<api::ListIncidentsResponse>, Status> {
        let request = request.into_inner();
        let run = self.solution(&request.solution)?;
        if request.page_size < 0 {
            return Err(Status::invalid_argument("page_size: must not be negative"));
        }
        let size = match request.page_size {
            0 => 100,
            n => (n as usize).min(MAX_PAGE),
        };
        let start = match request.page_token.as_str() {
            "" => 0,
            token => token.parse::<usize>().map_err(|_| {
                Status::invalid_argument("page_token: is not a token this API gave")
            })?,
        };
        let mut incidents = run.each_state(|state| state.open_incidents(&run.rules));
        incidents.retain(|i| request.device_id.is_empty() || i.device_id == request.device_id);
        incidents.sort_by(|a, b| (a.raised_at, &a.incident_id).cmp(&(b.raised_at, &b.incident_id)));
        let page: Vec<api::Incident> = incidents
            .iter()
            .skip(start)
            .take(size)
            .map(incident)
            .collect();
        let next = start + page.len();
        Ok(Response::new(api::ListIncidentsResponse {
            incidents: page,
            next_page_token: if next < incidents.len() {
                next.to_string()
            } else {
                String::new()
            },
        }))
    }

    type WatchDetectionsStream = DetectionStream;

    async fn watch_detections(
        &self,
        request: Request<api::WatchDetectionsRequest>,
    ) -> Result<Response<Self::WatchDetectionsStream>, Status> {
        let request = request.into_inner();
        let run = self.solution(&request.solution)?;
        let solution = run.key.clone();
        let device = request.device_id;
        let wanted = move |key: &str, detection: &pb::Detection| {
            key == solution && (device.is_empty() || detection.device_id == device)
        };
        let receiver = self.shared.detections.subscribe();
        let stream = BroadcastStream::new(receiver).filter_map(move |item| match item {
            Ok((key, detection)) if wanted(&key, &detection) => Some(Ok(detection)),
            Ok(_) => None,
            Err(_) => Some(Err(Status::data_loss(
                "the watcher fell behind and missed detections; \
                 read them from the detections topic",
            ))),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
