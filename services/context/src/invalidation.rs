//! Cache invalidation from PostgreSQL: the registry's triggers `NOTIFY` every change and
//! this listener drops the cached lookups that depend on it.

use std::sync::Arc;

use sinter_runtime::Shutdown;
use sqlx::postgres::PgListener;

use crate::cache::ContextCache;
use crate::registry::CHANNEL;

/// Listen on `url` until shutdown and invalidate `cache` on every notification. When the
/// connection drops, notifications may have been lost, so the whole cache is dropped once
/// the listener is back.
///
/// Returns once listening, so that no change committed afterwards is missed.
pub async fn listen(
    url: &str,
    cache: Arc<ContextCache>,
    shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    tracing::info!(channel = CHANNEL, "Listening for registry changes.");
    let task = tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                () = shutdown.clone().wait() => break,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => cache.invalidate(notification.payload()),
                // Limitation: a change committed while the listener reconnects is only
                // bounded by the TTL for lookups cached in that window.
                Ok(None) => {
                    tracing::warn!("Registry notifications interrupted; dropping the cache.");
                    cache.clear();
                }
                Err(error) => {
                    tracing::warn!(error = %error,
                        "Registry notifications failed; dropping the cache and retrying.");
                    cache.clear();
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(task)
}
