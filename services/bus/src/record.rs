//! The records that travel over the bus: what a producer sends and what a consumer receives.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition number, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// Names partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// One record header: a name and a byte value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub name: String,
    /// The header's value, any bytes. Kafka's null value is read as empty.
    pub value: Bytes,
}

/// A record's headers: name/value pairs in the order they were added; a name may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<Header>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a header, keeping any earlier one of the same name.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Bytes>) {
        self.entries.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// The value of the first header named `name`.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.entries
            .iter()
            .find(|header| header.name == name)
            .map(|header| &header.value)
    }

    /// The values of every header named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.entries
            .iter()
            .filter(move |header| header.name == name)
            .map(|header| &header.value)
    }

    /// Removes every header named `name`.
    pub fn remove_all(&mut self, name: &str) {
        self.entries.retain(|header| header.name != name);
    }

    /// The headers in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.entries.iter()
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes taken by names and values, for retention accounting.
    pub(crate) fn byte_len(&self) -> usize {
        self.entries
            .iter()
            .map(|header| header.name.len() + header.value.len())
            .sum()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl<N: Into<String>, V: Into<Bytes>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let entries = iter
            .into_iter()
            .map(|(name, value)| Header {
                name: name.into(),
                value: value.into(),
            })
            .collect();
        Self { entries }
    }
}

/// A record to send: key, payload, headers and an optional creation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Picks the partition; in Sinter, the device id.
    pub key: Bytes,
    /// The message, in Sinter a protobuf encoding.
    pub payload: Bytes,
    /// Headers, trace context among them once sent.
    pub headers: Headers,
    /// When the record was made; `None` lets the bus stamp the time of sending.
    pub timestamp: Option<SystemTime>,
}

impl Record {
    /// A record with no headers, stamped when sent.
    pub fn new(key: impl Into<Bytes>, payload: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            payload: payload.into(),
            headers: Headers::new(),
            timestamp: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Sets the creation time.
    pub fn with_timestamp(mut self, timestamp: SystemTime) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

/// Where a sent record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The partition its key picked.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
}

/// A record as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key; Kafka's null key is read as empty.
    pub key: Bytes,
    /// Its payload; Kafka's null payload is read as empty.
    pub payload: Bytes,
    /// Its headers, in the order sent.
    pub headers: Headers,
    /// Its creation time, when the bus knows it.
    pub timestamp: Option<SystemTime>,
}

impl Delivered {
    /// The partition this record was read from.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_order_and_duplicates() {
        let mut headers: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(headers.get("a").map(|v| &v[..]), Some(&b"1"[..]));
        let all: Vec<_> = headers.get_all("a").map(|v| v.to_vec()).collect();
        assert_eq!(all, vec![b"1".to_vec(), b"3".to_vec()]);
        headers.remove_all("a");
        assert_eq!(headers.len(), 1);
        assert_eq!(headers.iter().next().map(|h| h.name.as_str()), Some("b"));
    }
}
