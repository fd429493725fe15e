//! How a Sinter service binary starts and stops: it loads its Solutions, connects to
//! the bus, builds the service, serves gRPC (health, reflection, its API) and the
//! metrics endpoint, waits for its topics, and shuts down cleanly on SIGINT or SIGTERM.
#![forbid(unsafe_code)]

mod args;
mod bus;
mod service;
mod shutdown;
mod solutions;

pub use args::{BusUrl, ServiceArgs};
pub use bus::connect_bus;
pub use service::{BoxError, RuntimeError, Service, ServiceContext, ServiceSpec, run};
pub use shutdown::Shutdown;
pub use solutions::{LoadedSolutions, consumer_group, load_solutions};
