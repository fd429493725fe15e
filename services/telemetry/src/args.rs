//! Command-line settings for telemetry, shared by every binary.

use std::net::SocketAddr;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, one line per event.
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// Telemetry flags, flattened into each binary's arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct TelemetryArgs {
    /// Log line format.
    #[arg(long, env = "SINTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Address of the Prometheus scrape endpoint (`/metrics`); `off` disables it.
    #[arg(long, env = "SINTER_METRICS_ADDR", default_value = "127.0.0.1:9464",
          value_parser = parse_metrics_addr)]
    pub metrics_addr: MetricsAddr,
}

/// Where the scrape endpoint listens, if anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    Off,
    On(SocketAddr),
}

fn parse_metrics_addr(text: &str) -> Result<MetricsAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(MetricsAddr::Off);
    }
    text.parse::<SocketAddr>()
        .map(MetricsAddr::On)
        .map_err(|err| format!("{text:?} is not an address like 127.0.0.1:9464 or `off`: {err}"))
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        TelemetryArgs {
            log_format: LogFormat::Text,
            metrics_addr: MetricsAddr::On(SocketAddr::from(([127, 0, 0, 1], 9464))),
        }
    }
}

impl TelemetryArgs {
    /// The scrape endpoint's address, `None` when disabled.
    pub fn metrics_socket(&self) -> Option<SocketAddr> {
        match self.metrics_addr {
            MetricsAddr::Off => None,
            MetricsAddr::On(addr) => Some(addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_addr_parses_off_and_addresses() {
        assert_eq!(parse_metrics_addr("off"), Ok(MetricsAddr::Off));
        assert_eq!(
            parse_metrics_addr("0.0.0.0:9000"),
            Ok(MetricsAddr::On(SocketAddr::from(([0, 0, 0, 0], 9000))))
        );
        let err = parse_metrics_addr("nine").expect_err("not an address");
        assert!(err.contains("\"nine\""), "{err}");
    }
}
