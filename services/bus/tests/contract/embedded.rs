//! The contract suite on the embedded bus.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sinter_bus::Bus;
use sinter_bus::embedded::EmbeddedBus;

use crate::suite::Harness;

/// A fresh embedded bus for every case.
pub struct EmbeddedHarness;

#[async_trait]
impl Harness for EmbeddedHarness {
    async fn bus(&self) -> Arc<dyn Bus> {
        crate::suite::init_logs();
        Arc::new(EmbeddedBus::new())
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(5)
    }
}

contract_suite!(crate::embedded::EmbeddedHarness);
