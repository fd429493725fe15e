//! Sinter's contracts: the records on its topics and its gRPC APIs, generated from
//! `proto/`, plus conversions between protobuf and core types.
#![forbid(unsafe_code)]
// Generated code is not held to the workspace's documentation and lint habits.
#![allow(clippy::all)]

/// The records on the topics (`proto/sinter/events/v1`).
pub mod events {
    pub mod v1 {
        tonic::include_proto!("sinter.events.v1");
    }
}

/// The ingest API (`proto/sinter/ingest/v1`).
pub mod ingest {
    pub mod v1 {
        tonic::include_proto!("sinter.ingest.v1");
    }
}

/// The analytics API (`proto/sinter/analytics/v1`).
pub mod analytics {
    pub mod v1 {
        tonic::include_proto!("sinter.analytics.v1");
    }
}

/// The context API (`proto/sinter/context/v1`).
pub mod context {
    pub mod v1 {
        tonic::include_proto!("sinter.context.v1");
    }
}

/// The orchestrator API (`proto/sinter/orchestrator/v1`).
pub mod orchestrator {
    pub mod v1 {
        tonic::include_proto!("sinter.orchestrator.v1");
    }
}

pub mod time;

/// The encoded `FileDescriptorSet` of every Sinter proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sinter_descriptor");

/// Fully qualified names of Sinter's gRPC services, as reflection lists them.
pub const SERVICE_NAMES: &[&str] = &[
    "sinter.ingest.v1.IngestService",
    "sinter.analytics.v1.AnalyticsService",
    "sinter.context.v1.ContextService",
    "sinter.orchestrator.v1.OrchestratorService",
];
