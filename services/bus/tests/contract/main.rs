//! Contract tests: one suite of bus semantics, run on the embedded bus and on a real broker.
//!
//! The broker is at `SINTER_KAFKA_BROKERS` (default `127.0.0.1:9092`); not reaching it is a
//! failure, never a skip.

#[macro_use]
mod suite;
mod embedded;
mod kafka;
