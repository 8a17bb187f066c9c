//! The connection to NATS: one `async_nats::Client` per node, which reconnects forever
//! (a sim node or gateway outlives any NATS outage), with its state published on a
//! `watch` channel so `/metrics` can show it and the gateway can react to it.
//!
//! Settings (async-nats 0.51, whose defaults are in brackets):
//! - ping every [`PING_INTERVAL`] = 10 s [60 s]. async-nats drops the connection when a
//!   third ping finds two unanswered, and since 0.51 only *incoming* traffic postpones a
//!   ping (nats.rs#1593: a node that publishes every tick never pinged, so a dead server
//!   behind a silent network went unnoticed). A silent failure is found in 20–30 s; a
//!   server that stops is found at once, its socket closes. A handful of nodes pinging
//!   every 10 s costs nothing.
//! - reconnect forever (`max_reconnects(None)`) with delays doubling from 2 ms up to
//!   [`MAX_RECONNECT_DELAY`] = 2 s [4 s]: a NATS restart of a few seconds is over within
//!   2 s of the server being back.
//! - `retry_on_initial_connect`: a node may start before NATS; it shows `Connecting`.
//! - subscription capacity left at 65 536 messages: a subscriber whose channel is full
//!   loses messages ("slow consumer"), but the batch reader is a *pull* consumer that
//!   never has more than one pull (500 batches) in flight, and request/reply traffic is
//!   a few messages per second. Slow-consumer events are still counted and logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the client pings the server when nothing comes in.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// The longest wait between two reconnect attempts.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// TCP connect plus the NATS handshake, per attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected yet since start.
    Connecting,
    Connected,
    /// Lost; the client is reconnecting.
    Disconnected,
    /// Closed for good (the client was dropped or drained).
    Closed,
}

impl LinkState {
    /// 1 when connected, 0 otherwise: the gauge `/metrics` will show.
    pub fn is_up(self) -> bool {
        self == LinkState::Connected
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The URL cannot be used (with `retry_on_initial_connect`, an unreachable server
    /// is not an error: the link stays `Connecting`).
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
}

/// What the event callback counts, shared with the link.
#[derive(Debug, Default)]
struct Counters {
    disconnects: AtomicU64,
    slow_consumers: AtomicU64,
}

/// A connected (or connecting) NATS client and its state.
#[derive(Clone)]
pub struct Link {
    client: async_nats::Client,
    state: watch::Receiver<LinkState>,
    counters: Arc<Counters>,
}

/// Doubles from 2 ms (the first retry at once) up to [`MAX_RECONNECT_DELAY`].
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exp = u32::try_from(attempts - 1).unwrap_or(u32::MAX).min(20);
    Duration::from_millis(2u64.pow(exp)).min(MAX_RECONNECT_DELAY)
}

impl Link {
    /// Connects to `url` (one server or a comma-separated list, `cluster.nats_url`),
    /// naming the connection `name` on the server (its monitoring shows it).
    pub async fn connect(url: &str, name: &str) -> Result<Link, LinkError> {
        let (tx, state) = watch::channel(LinkState::Connecting);
        let tx = Arc::new(tx);
        let counters = Arc::new(Counters::default());
        let seen = Arc::clone(&counters);
        let options = async_nats::ConnectOptions::new()
            .name(name)
            .ping_interval(PING_INTERVAL)
            .connection_timeout(CONNECT_TIMEOUT)
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .retry_on_initial_connect()
            .event_callback(move |event| {
                let (tx, seen) = (Arc::clone(&tx), Arc::clone(&seen));
                async move { on_event(&event, &tx, &seen) }
            });
        let servers: Vec<&str> = url.split(',').map(str::trim).collect();
        let client = options
            .connect(servers.as_slice())
            .await
            .map_err(|source| LinkError::Connect {
                url: url.to_owned(),
                source,
            })?;
        Ok(Link {
            client,
            state,
            counters,
        })
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// A receiver that sees every change of state.
    pub fn watch(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }

    /// Waits until connected, at most `within`; whether it is.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let mut state = self.state.clone();
        let outcome = tokio::time::timeout(within, state.wait_for(|s| s.is_up())).await;
        matches!(outcome, Ok(Ok(_)))
    }

    /// How many times the connection was lost since start.
    pub fn disconnects(&self) -> u64 {
        self.counters.disconnects.load(Ordering::Relaxed)
    }

    /// How many slow-consumer events the client reported (messages it dropped because
    /// a subscriber did not keep up).
    pub fn slow_consumers(&self) -> u64 {
        self.counters.slow_consumers.load(Ordering::Relaxed)
    }
}

fn on_event(event: &async_nats::Event, tx: &watch::Sender<LinkState>, seen: &Counters) {
    use async_nats::Event;
    match event {
        Event::Connected => {
            log::info!("NATS: connected");
            tx.send_replace(LinkState::Connected);
        }
        Event::Disconnected => {
            log::warn!("NATS: disconnected, reconnecting");
            seen.disconnects.fetch_add(1, Ordering::Relaxed);
            tx.send_replace(LinkState::Disconnected);
        }
        Event::Closed => {
            log::info!("NATS: connection closed");
            tx.send_replace(LinkState::Closed);
        }
        Event::SlowConsumer(sid) => {
            seen.slow_consumers.fetch_add(1, Ordering::Relaxed);
            log::warn!("NATS: slow consumer on subscription {sid}, messages dropped");
        }
        Event::LameDuckMode => log::warn!("NATS: the server is entering lame duck mode"),
        other => log::warn!("NATS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_double_up_to_the_cap() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(2));
        assert_eq!(reconnect_delay(5), Duration::from_millis(16));
        assert_eq!(reconnect_delay(12), MAX_RECONNECT_DELAY);
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }

    #[test]
    fn events_drive_the_state_and_counters() {
        let (tx, rx) = watch::channel(LinkState::Connecting);
        let seen = Counters::default();
        on_event(&async_nats::Event::Connected, &tx, &seen);
        assert_eq!(*rx.borrow(), LinkState::Connected);
        on_event(&async_nats::Event::Disconnected, &tx, &seen);
        on_event(&async_nats::Event::SlowConsumer(3), &tx, &seen);
        assert_eq!(*rx.borrow(), LinkState::Disconnected);
        assert_eq!(seen.disconnects.load(Ordering::Relaxed), 1);
        assert_eq!(seen.slow_consumers.load(Ordering::Relaxed), 1);
        on_event(&async_nats::Event::Closed, &tx, &seen);
        assert!(!rx.borrow().is_up());
    }
}
