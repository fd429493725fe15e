//! Enrichment figures on a registry of 100,000 assets: situations per second with a warm
//! cache (one core), and the latency of cold lookups (p50, p99), on PostgreSQL and SQLite.
//!
//! Run with `cargo bench -p sinter-context --bench enrichment`; PostgreSQL comes from
//! `SINTER_TEST_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/postgres).

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use sinter_context::cache::ContextCache;
use sinter_context::enrich::SolutionContext;
use sinter_context::metrics::ContextMetrics;
use sinter_context::{Enricher, Registry};
use sinter_core::{Solution, SystemClock};
use sinter_proto::events::v1::Detection;
use sqlx::Connection;

const ASSETS: usize = 100_000;
const AREAS: usize = 100;
const LINES: usize = 1_000;
const WARM_DEVICES: usize = 10_000;
const WARM_SITUATIONS: usize = 1_000_000;
const COLD_LOOKUPS: usize = 2_000;

fn main() -> anyhow::Result<()> {
    // One thread: the warm figure is per core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let admin = std::env::var("SINTER_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("sinter_context_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        let postgres = format!("{base}/{name}");
        let sqlite_path = std::env::temp_dir().join(format!("{name}.db"));
        let sqlite = format!("sqlite:{}", sqlite_path.display());

        let result = async {
            bench("PostgreSQL", &postgres).await?;
            bench("SQLite", &sqlite).await
        }
        .await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        let _ = std::fs::remove_file(&sqlite_path);
        result
    })
}

async fn bench(backend: &str, url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(SystemClock);
    let registry = Registry::connect(url, clock.clone()).await?;
    let started = Instant::now();
    seed(url).await?;
    println!(
        "{backend}: seeded {} assets and {ASSETS} devices in {:.1} s",
        registry.count_assets().await?,
        started.elapsed().as_secs_f64()
    );
    let cache = Arc::new(ContextCache::new(
        Duration::from_secs(3600),
        2_000_000,
        clock.clone(),
    ));
    let enricher = Enricher::new(
        registry.clone(),
        cache.clone(),
        ContextMetrics::new(),
        clock,
    );

    // Cold: every lookup misses and reads the registry.
    let mut latencies = Vec::with_capacity(COLD_LOOKUPS);
    for n in 0..COLD_LOOKUPS {
        let device = format!("dev-{}", (n * 7919) % ASSETS);
        let started = Instant::now();
        enricher.lookup(&device).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{backend}: cold lookup latency over {COLD_LOOKUPS} devices: p50 {:.3} ms, p99 {:.3} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );

    // Warm: situations built and encoded, every lookup a cache hit.
    let yaml = [
        "apiVersion: sinter.dev/v1alpha1",
        "kind: Solution",
        "metadata: {name: bench}",
        "spec:",
        "  devices:",
        "    - type: pump",
        "      match: [\"dev-*\"]",
        "      metrics:",
        "        - {name: temp}",
    ]
    .join("\n");
    let solution = Solution::from_yaml(&yaml).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let context = SolutionContext::new(&solution);
    let devices: Vec<String> = (0..WARM_DEVICES)
        .map(|n| format!("dev-{}", n * 10))
        .collect();
    for device in &devices {
        enricher.lookup(device).await?;
    }
    let detections: Vec<Detection> = devices
        .iter()
        .map(|device| Detection {
            id: format!("dt-{device}"),
            device_id: device.clone(),
            metric: "temp".into(),
            value: 91.0,
            ..Detection::default()
        })
        .collect();
    // What the pipeline does: the detection's own bytes and the cached, encoded asset
    // context are copied into the situation's encoding.
    let payloads: Vec<Vec<u8>> = detections.iter().map(Message::encode_to_vec).collect();
    let mut bytes = 0usize;
    let started = Instant::now();
    for n in 0..WARM_SITUATIONS {
        let at = n % detections.len();
        let situation = enricher
            .enrich_encoded(&context, &detections[at], &payloads[at])
            .await?;
        bytes += situation.len();
    }
    let took = started.elapsed().as_secs_f64();
    let ratio = enricher.metrics().counts().hit_ratio();
    println!(
        "{backend}: warm cache: {:.0} situations/s on one core ({WARM_SITUATIONS} situations, \
         {:.0} bytes each, cache hit ratio {ratio:.3})",
        WARM_SITUATIONS as f64 / took,
        bytes as f64 / WARM_SITUATIONS as f64,
    );

    // For comparison: the situation as a message (the API's form), then encoded.
    let mut message_bytes = 0usize;
    let started = Instant::now();
    for n in 0..WARM_SITUATIONS / 4 {
        let detection = detections[n % detections.len()].clone();
        let situation = enricher.enrich(&context, detection).await?;
        message_bytes += situation.encode_to_vec().len();
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "{backend}: warm cache, built as a message and encoded: {:.0} situations/s \
         ({:.0} bytes each)",
        (WARM_SITUATIONS / 4) as f64 / took,
        message_bytes as f64 / (WARM_SITUATIONS / 4) as f64,
    );
    registry.close().await;
    Ok(())
}

/// One site, 100 areas, 1,000 lines and machines below the lines up to 100,000 assets;
/// device `dev-<n>` on the n-th machine; an open work order on every tenth machine.
/// Written with multi-row inserts: the import path checks each row and is far slower.
async fn seed(url: &str) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await?;
    sqlx::query(
        "INSERT INTO sites (id, name, timezone, attributes, created_at, updated_at) \
                 VALUES ('plant', 'Plant', 'UTC', '{}', 0, 0)",
    )
    .execute(&pool)
    .await?;
    let mut assets: Vec<(String, Option<String>, &str)> = Vec::with_capacity(ASSETS);
    for area in 0..AREAS {
        assets.push((format!("area-{area}"), None, "area"));
    }
    for line in 0..LINES {
        assets.push((
            format!("line-{line}"),
            Some(format!("area-{}", line % AREAS)),
            "line",
        ));
    }
    let machines = ASSETS - AREAS - LINES;
    for machine in 0..machines {
        assets.push((
            format!("m-{machine}"),
            Some(format!("line-{}", machine % LINES)),
            "asset",
        ));
    }
    let mut tx = pool.begin().await?;
    for chunk in assets.chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|(id, parent, level)| {
                let parent = parent
                    .as_ref()
                    .map_or("NULL".to_owned(), |p| format!("'{p}'"));
                format!(
                    "('{id}', 'plant', {parent}, '{id}', '{level}', '', 'high', 'reliability', \
                     '{{\"power_kw\": 75}}', 0, 0)"
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO assets (id, site_id, parent_id, name, level, external_id, criticality, \
             owner_team, attributes, created_at, updated_at) VALUES {}",
            values.join(",")
        ))
        .execute(&mut *tx)
        .await?;
    }
    let devices: Vec<String> = (0..ASSETS)
        .map(|n| format!("('dev-{n}', 'm-{}', 'pump', '{{}}', 0, 0)", n % machines))
        .collect();
    for chunk in devices.chunks(1000) {
        sqlx::query(&format!(
            "INSERT INTO devices (id, asset_id, device_type, attributes, created_at, updated_at) \
             VALUES {}",
            chunk.join(",")
        ))
        .execute(&mut *tx)
        .await?;
    }
    let orders: Vec<String> = (0..machines)
        .step_by(10)
        .map(|n| format!("('wo-{n}', 'm-{n}', 'EXT-{n}', 'Inspect', 'open', {n}, 0)"))
        .collect();
    for chunk in orders.chunks(1000) {
        sqlx::query(&format!(
            "INSERT INTO work_orders (id, asset_id, external_id, title, status, created_at, \
             updated_at) VALUES {}",
            chunk.join(",")
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    pool.close().await;
    Ok(())
}
