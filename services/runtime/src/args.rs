//! The flags every service binary takes.

use std::path::PathBuf;
use std::str::FromStr;

use sinter_grpc::GrpcArgs;
use sinter_telemetry::TelemetryArgs;

/// Where the bus is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusUrl {
    /// `kafka://host:port[,host:port...]`: a Kafka cluster.
    Kafka { brokers: String },
    /// `embedded`: the in-process bus, shared only by services in the same process.
    Embedded,
}

impl FromStr for BusUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "embedded" {
            return Ok(BusUrl::Embedded);
        }
        let Some(brokers) = text.strip_prefix("kafka://") else {
            return Err(format!(
                "{text:?} is not a bus URL: expected kafka://host:port[,host:port] or embedded"
            ));
        };
        let brokers = brokers.trim_end_matches('/');
        let valid = !brokers.is_empty()
            && brokers.split(',').all(|b| {
                b.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                })
            });
        if !valid {
            return Err(format!(
                "{text:?} names no broker as host:port after kafka://"
            ));
        }
        Ok(BusUrl::Kafka {
            brokers: brokers.to_owned(),
        })
    }
}

impl std::fmt::Display for BusUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusUrl::Kafka { brokers } => write!(f, "kafka://{brokers}"),
            BusUrl::Embedded => f.write_str("embedded"),
        }
    }
}

/// Flags shared by `sinter-ingest`, `sinter-analytics`, `sinter-context` and
/// `sinter-orchestrator`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServiceArgs {
    /// Solution files to run (YAML). Several may be given; a Solution that does not
    /// validate is refused with its errors and the others still run.
    #[arg(
        long = "solution",
        env = "SINTER_SOLUTION",
        value_delimiter = ',',
        required = true
    )]
    pub solutions: Vec<PathBuf>,
    /// The bus: kafka://host:port[,host:port].
    #[arg(long, env = "SINTER_BUS", default_value = "kafka://127.0.0.1:9092")]
    pub bus: BusUrl,
    /// A further librdkafka property for every Kafka client, as KEY=VALUE
    /// (`security.protocol=SASL_SSL`, `batch.num.messages=100`); repeat the flag, or
    /// separate with commas in the variable. It overrides Sinter's own choice, except for
    /// the properties acknowledgements and offsets rest on, which are refused. Empty
    /// entries are ignored.
    #[arg(
        long = "kafka-property",
        env = "SINTER_KAFKA_PROPERTIES",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        value_parser = parse_kafka_property
    )]
    pub kafka_properties: Vec<Option<(String, String)>>,
    #[command(flatten)]
    pub grpc: GrpcArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl ServiceArgs {
    /// The `--kafka-property` pairs given, without the empty entries.
    pub fn kafka_properties(&self) -> Vec<(String, String)> {
        self.kafka_properties.iter().flatten().cloned().collect()
    }
}

/// One `KEY=VALUE` of `--kafka-property`; `None` for an empty entry (an empty variable,
/// a trailing comma).
fn parse_kafka_property(text: &str) -> Result<Option<(String, String)>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok(Some((key.trim().to_owned(), value.to_owned())))
        }
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_properties_are_key_and_value() {
        assert_eq!(
            parse_kafka_property("batch.num.messages=1"),
            Ok(Some(("batch.num.messages".into(), "1".into())))
        );
        assert_eq!(
            parse_kafka_property("sasl.password=a=b"),
            Ok(Some(("sasl.password".into(), "a=b".into())))
        );
        assert_eq!(parse_kafka_property(" "), Ok(None));
        for bad in ["=1", "linger.ms"] {
            let err = parse_kafka_property(bad).expect_err(bad);
            assert!(err.contains("KEY=VALUE"), "{err}");
        }
    }

    #[test]
    fn parses_kafka_and_embedded_urls() {
        assert_eq!(
            "kafka://127.0.0.1:9092".parse(),
            Ok(BusUrl::Kafka {
                brokers: "127.0.0.1:9092".into()
            })
        );
        assert_eq!(
            "kafka://a:1,b:2/".parse(),
            Ok(BusUrl::Kafka {
                brokers: "a:1,b:2".into()
            })
        );
        assert_eq!("embedded".parse(), Ok(BusUrl::Embedded));
    }

    #[test]
    fn refuses_urls_without_brokers() {
        for bad in [
            "",
            "kafka://",
            "kafka://host",
            "kafka://:9092",
            "nats://x:1",
            "kafka://h:0",
        ] {
            let err = bad.parse::<BusUrl>().expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
