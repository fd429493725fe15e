//! The operator's main loop: hold the leader lease, and while holding it run the
//! Controller that reconciles every Solution in the cluster.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::Controller;
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{info, warn};

use crate::crd::Solution;
use crate::reconcile::{self, Context};

/// The Lease the replicas compete for.
pub const LEASE_NAME: &str = "sinter-operator";

/// Where the lease lives and who this replica is.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// The namespace of the Lease, usually the operator's own.
    pub namespace: String,
    /// This replica's identity, usually its pod name.
    pub identity: String,
    /// How long a lease holds without renewal, in seconds.
    pub duration_seconds: u64,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The lease could not be set up or kept.
    #[error("leader election failed: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
}

/// Run until `shutdown` resolves: reconcile while this replica leads, stand by otherwise.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    lease: LeaseSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(lease.duration_seconds)
        .with_grace(lease.duration_seconds.div_ceil(3).max(1))
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    tokio::pin!(shutdown);
    loop {
        if !*leading.borrow_and_update() {
            info!(identity = %lease.identity, "Standing by: another replica leads.");
            tokio::select! {
                () = &mut shutdown => break,
                changed = leading.changed() => {
                    if changed.is_err() { break; }
                    continue;
                }
            }
        }
        info!(identity = %lease.identity, "Leading: reconciling Solutions.");
        let controller = controller(client.clone(), ctx.clone());
        tokio::pin!(controller);
        tokio::select! {
            () = &mut shutdown => break,
            () = &mut controller => {
                warn!("The controller stopped; restarting it.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = wait_until_lost(&mut leading) => {
                warn!(identity = %lease.identity, "Lease lost: reconciling stops.");
            }
        }
    }
    drop(leading);
    match lease_task.await {
        Ok(Ok(manager)) => {
            if let Err(error) = manager.release().await {
                warn!(error = %error, "The lease could not be released.");
            }
        }
        Ok(Err(error)) => warn!(error = %error, "The lease task failed."),
        Err(error) => warn!(error = %error, "The lease task panicked."),
    }
    Ok(())
}

async fn wait_until_lost(leading: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if leading.changed().await.is_err() || !*leading.borrow_and_update() {
            return;
        }
    }
}

/// The Controller over every Solution, woken also by changes to what they own.
async fn controller(client: Client, ctx: Arc<Context>) {
    let solutions: Api<Solution> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::all(client.clone());
    let config_maps: Api<ConfigMap> = Api::all(client);
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=sinter-operator");
    Controller::new(solutions, watcher::Config::default())
        .owns(deployments, owned.clone())
        .owns(config_maps, owned)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(error = %error, "Controller reported an error.");
            }
        })
        .await;
}
