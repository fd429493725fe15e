//! A real HTTP server standing in for a CMMS: it records every POST and opens one work
//! order per idempotency key, as a receiver that honours the key does.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub idempotency_key: Option<String>,
    pub token: Option<String>,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    work_orders: Mutex<BTreeSet<String>>,
    failures_left: AtomicUsize,
    failure_status: AtomicUsize,
    hang_next: AtomicBool,
}

/// The webhook target of a test.
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .route("/work-orders", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/work-orders"),
            state,
        }
    }

    /// Every request so far, duplicates included.
    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// Work orders opened: one per idempotency key.
    pub fn work_orders(&self) -> usize {
        self.state.work_orders.lock().expect("lock").len()
    }

    /// Answer the next `times` requests with `status`.
    pub fn fail(&self, status: u16, times: usize) {
        self.state
            .failure_status
            .store(usize::from(status), Ordering::SeqCst);
        self.state.failures_left.store(times, Ordering::SeqCst);
    }

    /// Record the next request, then never answer it: the sender is left waiting, as when
    /// it crashes after sending.
    pub fn hang_next(&self) {
        self.state.hang_next.store(true, Ordering::SeqCst);
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let received = Received {
        idempotency_key: header("idempotency-key"),
        token: header("x-cmms-token"),
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    };
    state.requests.lock().expect("lock").push(received.clone());
    if state.hang_next.swap(false, Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let failing = state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if failing {
        let status = u16::try_from(state.failure_status.load(Ordering::SeqCst)).unwrap_or(500);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, "the CMMS is down".to_owned());
    }
    if let Some(key) = received.idempotency_key {
        state.work_orders.lock().expect("lock").insert(key);
    }
    (StatusCode::CREATED, "{}".to_owned())
}
