//! The real services a test needs: it fails, never skips, when one is not reachable.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The Kafka-compatible broker's address: `SINTER_KAFKA_BROKERS`, else 127.0.0.1:9092.
pub fn kafka_brokers() -> String {
    std::env::var("SINTER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// Panic with a clear message unless the broker accepts TCP connections.
pub fn require_kafka() -> String {
    let brokers = kafka_brokers();
    let first = brokers.split(',').next().unwrap_or_default().to_owned();
    require_tcp("the Kafka-compatible broker", &first, "make services");
    brokers
}

/// Panic with a clear message unless `addr` accepts TCP connections.
pub fn require_tcp(what: &str, addr: &str, how_to_start: &str) {
    let resolved: Vec<SocketAddr> = match addr.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(err) => panic!("{what}: cannot resolve {addr:?}: {err}"),
    };
    let reachable = resolved
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "{what} is not reachable at {addr}; start it with `{how_to_start}`"
    );
}

/// A TCP port that was free a moment ago on 127.0.0.1, and that this process has not
/// handed out before (the system may offer a just-released port again at once).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local address").port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
