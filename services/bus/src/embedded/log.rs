//! The embedded bus's topics: per-partition logs of records in memory, with a retention bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::watch;

use super::lock;
use crate::{Delivered, Headers, Record};

/// Bytes counted for each record beyond its key, payload and headers.
const RECORD_OVERHEAD_BYTES: usize = 64;

/// One topic: its partitions' logs and a signal raised on every append.
pub(crate) struct TopicLog {
    name: String,
    partitions: Vec<Mutex<PartitionLog>>,
    appended: watch::Sender<u64>,
    retention_bytes: usize,
}

/// One partition's retained records, oldest first.
struct PartitionLog {
    /// Offset of the first retained record.
    base_offset: i64,
    records: VecDeque<Arc<StoredRecord>>,
    bytes: usize,
}

/// A record as the log keeps it.
struct StoredRecord {
    key: Bytes,
    payload: Bytes,
    headers: Headers,
    timestamp: SystemTime,
}

/// What a read at some offset found.
pub(crate) enum Read {
    /// The record at the offset, or at the oldest retained offset when the one asked for is
    /// gone; `skipped` counts records lost that way.
    Record { delivered: Delivered, skipped: i64 },
    /// Nothing at or after the offset yet.
    CaughtUp,
}

impl TopicLog {
    /// An empty topic of `partitions` partitions keeping about `retention_bytes` per partition.
    pub(crate) fn new(name: &str, partitions: i32, retention_bytes: usize) -> Self {
        let partitions = (0..partitions.max(1))
            .map(|_| {
                Mutex::new(PartitionLog {
                    base_offset: 0,
                    records: VecDeque::new(),
                    bytes: 0,
                })
            })
            .collect();
        let (appended, _) = watch::channel(0);
        Self {
            name: name.to_owned(),
            partitions,
            appended,
            retention_bytes,
        }
    }

    /// The topic's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// How many partitions it has.
    pub(crate) fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// A receiver that changes on every append to any partition.
    pub(crate) fn watch_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Appends `record` to `partition`, returns its offset and wakes waiting consumers.
    pub(crate) fn append(&self, partition: i32, record: Record) -> i64 {
        let stored = StoredRecord {
            timestamp: record.timestamp.unwrap_or_else(SystemTime::now),
            key: record.key,
            payload: record.payload,
            headers: record.headers,
        };
        let size = stored.key.len() + stored.payload.len() + stored.headers.byte_len();
        let offset = {
            let mut log = lock(self.partition(partition));
            let offset = log.base_offset + len_as_offset(log.records.len());
            log.records.push_back(Arc::new(stored));
            log.bytes += size + RECORD_OVERHEAD_BYTES;
            // Keep the newest record whatever its size, so a send is always readable.
            while log.bytes > self.retention_bytes && log.records.len() > 1 {
                if let Some(oldest) = log.records.pop_front() {
                    log.bytes -= record_size(&oldest);
                    log.base_offset += 1;
                }
            }
            offset
        };
        self.appended
            .send_modify(|appends| *appends = appends.wrapping_add(1));
        offset
    }

    /// Reads the record at `offset` of `partition`.
    pub(crate) fn read(&self, partition: i32, offset: i64) -> Read {
        let log = lock(self.partition(partition));
        let skipped = (log.base_offset - offset).max(0);
        let from = offset.max(log.base_offset);
        let index = usize::try_from(from - log.base_offset).unwrap_or(usize::MAX);
        let Some(stored) = log.records.get(index).cloned() else {
            return Read::CaughtUp;
        };
        drop(log);
        let delivered = Delivered {
            topic: self.name.clone(),
            partition,
            offset: from,
            key: stored.key.clone(),
            payload: stored.payload.clone(),
            headers: stored.headers.clone(),
            timestamp: Some(stored.timestamp),
        };
        Read::Record { delivered, skipped }
    }

    /// The oldest retained offset of `partition`.
    pub(crate) fn earliest_offset(&self, partition: i32) -> i64 {
        lock(self.partition(partition)).base_offset
    }

    /// The offset the next record appended to `partition` will get.
    pub(crate) fn end_offset(&self, partition: i32) -> i64 {
        let log = lock(self.partition(partition));
        log.base_offset + len_as_offset(log.records.len())
    }

    /// The oldest retained offset of `partition` and the offset its next record will get, read
    /// together.
    pub(crate) fn bounds(&self, partition: i32) -> (i64, i64) {
        let log = lock(self.partition(partition));
        (
            log.base_offset,
            log.base_offset + len_as_offset(log.records.len()),
        )
    }

    fn partition(&self, partition: i32) -> &Mutex<PartitionLog> {
        // Callers pass partitions below partition_count(); clamp rather than panic regardless.
        let index = usize::try_from(partition)
            .unwrap_or(0)
            .min(self.partitions.len() - 1);
        &self.partitions[index]
    }
}

fn record_size(record: &StoredRecord) -> usize {
    record.key.len() + record.payload.len() + record.headers.byte_len() + RECORD_OVERHEAD_BYTES
}

fn len_as_offset(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_grow_per_partition() {
        let log = TopicLog::new("t", 2, usize::MAX);
        assert_eq!(log.append(0, Record::new("k", "a")), 0);
        assert_eq!(log.append(0, Record::new("k", "b")), 1);
        assert_eq!(log.append(1, Record::new("k", "c")), 0);
        assert_eq!(log.end_offset(0), 2);
        let Read::Record { delivered, skipped } = log.read(0, 1) else {
            panic!("offset 1 should be readable");
        };
        assert_eq!(
            (delivered.offset, skipped, &delivered.payload[..]),
            (1, 0, &b"b"[..])
        );
        assert!(matches!(log.read(0, 2), Read::CaughtUp));
    }

    #[test]
    fn retention_drops_the_oldest_and_reports_the_gap() {
        let record_bytes = 1 + 100 + RECORD_OVERHEAD_BYTES;
        let log = TopicLog::new("t", 1, record_bytes * 3);
        for _ in 0..5 {
            log.append(0, Record::new("k", vec![0u8; 100]));
        }
        assert_eq!(log.earliest_offset(0), 2);
        let Read::Record { delivered, skipped } = log.read(0, 0) else {
            panic!("retained records should be readable");
        };
        assert_eq!((delivered.offset, skipped), (2, 2));
    }
}
