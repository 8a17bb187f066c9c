//! The cluster groundwork (issue 11) against a real nats-server with JetStream, started
//! by the harness (`common::nats::NatsServer`) on a free loopback port with a store of
//! its own. Every wait is bounded; the server is killed when a test ends.

mod common;

use common::nats::NatsServer;
use std::net::TcpStream;

#[test]
fn the_harness_starts_stops_and_restarts_nats_on_one_port_and_store() {
    let mut nats = NatsServer::start();
    let port = nats.port();
    assert_ne!(port, 4222);
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));
    assert!(
        nats.store_dir().join("jetstream").is_dir(),
        "JetStream keeps its store under -sd; log:\n{}",
        nats.log_text()
    );

    nats.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped: nothing accepts on {port}"
    );
    nats.restart();
    assert_eq!(nats.port(), port, "restart keeps the port");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(nats.log_text().contains("Server is ready"));
}
