//! Cluster mode for tests: the four service binaries as separate processes on the real
//! broker and PostgreSQL, for one Solution in a namespace of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sinter_grpc::BearerToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::database::TestDatabase;
use crate::process::{self, ChildProcess};
use crate::services::{free_port, require_kafka};

/// The services, in the order they start.
pub const SERVICES: [&str; 4] = ["ingest", "analytics", "context", "orchestrator"];

/// The running services and what they use.
pub struct Cluster {
    /// `<namespace>/pump-health`.
    pub solution: String,
    pub solution_file: PathBuf,
    brokers: String,
    databases: Vec<(&'static str, TestDatabase)>,
    ports: Vec<(&'static str, u16)>,
    /// `--kafka-property` values every service is started with.
    kafka_properties: Vec<String>,
    children: Vec<(&'static str, Option<ChildProcess>)>,
}

impl Cluster {
    /// Write `solution_yaml` with its namespace replaced by a fresh one (its topics are
    /// then this test's alone), provision its topics, create the databases, start the four
    /// services and wait until each serves.
    pub async fn start(solution_yaml: &str) -> Cluster {
        Cluster::start_with(solution_yaml, &[]).await
    }

    /// As [`Cluster::start`], each service given the librdkafka `kafka_properties`
    /// (`KEY=VALUE`).
    pub async fn start_with(solution_yaml: &str, kafka_properties: &[&str]) -> Cluster {
        let brokers = require_kafka();
        let namespace = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let yaml = replace_namespace(solution_yaml, &namespace);
        let solution_file = std::env::temp_dir().join(format!("sinter-cluster-{namespace}.yaml"));
        std::fs::write(&solution_file, yaml).expect("write the Solution");
        provision_topics(&solution_file, &brokers);
        let mut databases = Vec::new();
        for service in ["analytics", "context", "orchestrator"] {
            databases.push((
                service,
                TestDatabase::create(&format!("sinter_e2e_{service}")).await,
            ));
        }
        let ports = SERVICES.iter().map(|s| (*s, free_port())).collect();
        let mut cluster = Cluster {
            solution: format!("{namespace}/pump-health"),
            solution_file,
            brokers,
            databases,
            ports,
            kafka_properties: kafka_properties.iter().map(|p| (*p).to_owned()).collect(),
            children: SERVICES.iter().map(|s| (*s, None)).collect(),
        };
        for service in SERVICES {
            cluster.spawn(service);
        }
        for service in SERVICES {
            cluster.wait_serving(service).await;
        }
        cluster
    }

    /// `http://127.0.0.1:<port>` of `service`'s gRPC API.
    pub fn endpoint(&self, service: &str) -> String {
        let port = self
            .ports
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, port)| *port)
            .expect("a known service");
        format!("http://127.0.0.1:{port}")
    }

    /// The database URL of `service`.
    pub fn database_url(&self, service: &str) -> &str {
        self.databases
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, db)| db.url.as_str())
            .expect("a service with a database")
    }

    /// Start `service` (again).
    pub fn spawn(&mut self, service: &'static str) {
        let endpoint = self.endpoint(service);
        let addr = endpoint.trim_start_matches("http://").to_owned();
        let mut args = vec![
            "--solution".into(),
            self.solution_file.display().to_string(),
            "--bus".into(),
            format!("kafka://{}", self.brokers),
            "--grpc-addr".into(),
            addr,
            "--metrics-addr".into(),
            "off".into(),
        ];
        for property in &self.kafka_properties {
            args.extend(["--kafka-property".into(), property.clone()]);
        }
        match service {
            "ingest" => args.extend(["--http-addr".into(), "off".into(), "--no-mqtt".into()]),
            _ => args.extend([
                "--database-url".into(),
                self.database_url(service).to_owned(),
            ]),
        }
        let child = ChildProcess::spawn(&format!("sinter-{service}"), &args, &[]);
        let slot = self
            .children
            .iter_mut()
            .find(|(name, _)| *name == service)
            .expect("a known service");
        slot.1 = Some(child);
    }

    /// Kill `service` with SIGKILL: no shutdown code runs.
    pub fn kill(&mut self, service: &str) {
        let slot = self
            .children
            .iter_mut()
            .find(|(name, _)| *name == service)
            .expect("a known service");
        if let Some(child) = slot.1.take() {
            child.kill();
        }
    }

    /// Wait until `service` reports SERVING on gRPC health.
    pub async fn wait_serving(&mut self, service: &str) {
        let endpoint = self.endpoint(service);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if health(&endpoint).await == Some(ServingStatus::Serving as i32) {
                return;
            }
            let child = self
                .children
                .iter_mut()
                .find(|(name, _)| *name == service)
                .and_then(|(_, child)| child.as_mut())
                .expect("a started service");
            assert!(
                child.is_running(),
                "sinter-{service} exited:\n{}",
                child.output()
            );
            assert!(
                Instant::now() < deadline,
                "sinter-{service} never served:\n{}",
                child.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Everything `service` logged so far.
    pub fn output(&self, service: &str) -> String {
        self.children
            .iter()
            .find(|(name, _)| *name == service)
            .and_then(|(_, child)| child.as_ref())
            .map(ChildProcess::output)
            .unwrap_or_default()
    }

    /// Import the demo registry through the context service with `sinter assets import`.
    pub fn import_demo_registry(&self) {
        let registry = crate::repo_root().join("examples/demo/registry.csv");
        let (code, imported) = crate::replay::sinter_json(&[
            "assets",
            "import",
            &registry.display().to_string(),
            "--endpoint",
            &self.endpoint("context"),
        ]);
        assert_eq!(code, 0, "{imported}");
        assert_eq!(imported["refused"], 0, "{imported}");
    }

    /// The Solution file the services run.
    pub fn solution_path(&self) -> &Path {
        &self.solution_file
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The services stop before their databases are dropped.
        for (_, child) in &mut self.children {
            drop(child.take());
        }
        let _ = std::fs::remove_file(&self.solution_file);
    }
}

fn replace_namespace(yaml: &str, namespace: &str) -> String {
    let mut replaced = false;
    yaml.lines()
        .map(|line| {
            if !replaced && line.trim_start().starts_with("namespace:") {
                replaced = true;
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}namespace: {namespace}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Create `solution`'s topics with `sinter-operator topics`, as an operator would.
pub fn provision_topics(solution: &Path, brokers: &str) {
    let (code, output) = process::run(
        "sinter-operator",
        &[
            "--metrics-addr".into(),
            "off".into(),
            "topics".into(),
            "--solution".into(),
            solution.display().to_string(),
            "--bus".into(),
            format!("kafka://{brokers}"),
        ],
    );
    assert_eq!(code, 0, "sinter-operator topics failed:\n{output}");
}

/// The gRPC health status at `endpoint`, `None` when it does not answer.
pub async fn health(endpoint: &str) -> Option<i32> {
    let channel = sinter_grpc::connect(endpoint, BearerToken::default())
        .await
        .ok()?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    response.ok().map(|r| r.into_inner().status)
}
