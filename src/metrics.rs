//! Counters and gauges, exposed as Prometheus text at `/metrics` and summarized by the
//! `metrics` command.
//!
//! One [`Metrics`] value is created by `run` and shared (`Arc`) with every actor; there is
//! no global registry, so two servers in one test process never mix their numbers.
//! Counters are atomics: incrementing one on the broadcast path costs one atomic add.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("registering metric: {0}")]
    Register(#[from] prometheus::Error),
    #[error("encoding metrics: {0}")]
    Encode(String),
}

pub struct Metrics {
    registry: Registry,
    /// WebSocket connections accepted (upgraded), ever.
    pub connections_total: IntCounter,
    /// WebSocket connections open now.
    pub connections_active: IntGauge,
    /// Connections refused, by reason (`pool_full`, `origin`, `auth`).
    pub connections_rejected: IntCounterVec,
    /// Sessions closed by the server, by reason: `slow` (outbound queue full),
    /// `unresponsive` (silent and frozen: closed from outside), `timeout` (own heartbeat),
    /// `rate`, `too_big`.
    pub evictions: IntCounterVec,
    /// Client messages received (text or binary frames).
    pub messages_received: IntCounter,
    /// Frames sent to clients (batches, replies, snapshots...).
    pub messages_sent: IntCounter,
    /// `error` objects sent, by code.
    pub errors: IntCounterVec,
    pub batches: IntCounter,
    pub items: IntCounter,
    pub seq: IntGauge,
    pub tick: IntGauge,
    pub characters: IntGauge,
    pub tick_duration: Histogram,
    /// Ticks the simulation skipped because the broker's mailbox was full.
    pub ticks_deferred: IntCounter,
    /// Ticks delivered staggered: to the slices of the connections that waited longest,
    /// the rest getting them with a later tick's, the worker threads being busy for
    /// most of a tick (`broker::pacing`).
    pub deliveries_staggered: IntCounter,
    /// Audit entries kept in memory but not written to disk (the writer was behind).
    pub audit_unwritten: IntCounter,
    /// Cluster (docs/cluster.md): 1 while this node is connected to NATS.
    pub cluster_connected: IntGauge,
    /// Cluster: batches between the stream's last and what this node has (a gateway:
    /// ingested; a sim node: published and acknowledged).
    pub cluster_lag: IntGauge,
    /// Cluster: gaps in what a gateway read that it filled from the stream.
    pub cluster_gaps_repaired: IntCounter,
    /// Cluster: resync snapshots for everyone, after a gap the stream could not fill.
    pub cluster_resyncs: IntCounter,
    /// Cluster: delivered batches the sim node could not hand to its publisher.
    pub cluster_unpublished: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The `metrics` command's reply.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSummary {
    pub connections_total: u64,
    pub connections_active: i64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub batches: u64,
    pub items: u64,
    pub seq: i64,
    pub tick: i64,
    pub characters: i64,
    pub errors: u64,
    pub evictions: u64,
}

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new_custom(Some("simcast".into()), None)?;
        let counter = |name: &str, help: &str| -> Result<IntCounter, MetricsError> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, MetricsError> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let vec = |name: &str, help: &str, label: &str| -> Result<IntCounterVec, MetricsError> {
            let v = IntCounterVec::new(Opts::new(name, help), &[label])?;
            registry.register(Box::new(v.clone()))?;
            Ok(v)
        };
        let tick_duration = Histogram::with_opts(
            HistogramOpts::new("tick_duration_seconds", "Time to compute one tick").buckets(vec![
                0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
            ]),
        )?;
        registry.register(Box::new(tick_duration.clone()))?;
        Ok(Metrics {
            connections_total: counter("connections_total", "WebSocket connections accepted")?,
            connections_active: gauge("connections_active", "WebSocket connections open now")?,
            connections_rejected: vec(
                "connections_rejected_total",
                "Connections refused",
                "reason",
            )?,
            evictions: vec("evictions_total", "Sessions closed by the server", "reason")?,
            messages_received: counter("messages_received_total", "Client frames received")?,
            messages_sent: counter("messages_sent_total", "Frames sent to clients")?,
            errors: vec("errors_total", "Error objects sent to clients", "code")?,
            batches: counter("batches_total", "Batches flushed")?,
            items: counter("items_total", "Items published")?,
            seq: gauge("seq", "Seq of the latest batch")?,
            tick: gauge("tick", "Current simulation tick")?,
            characters: gauge("characters", "Characters in the world")?,
            tick_duration,
            ticks_deferred: counter(
                "ticks_deferred_total",
                "Ticks delayed because the broker was behind",
            )?,
            deliveries_staggered: counter(
                "deliveries_staggered_total",
                "Ticks delivered to between a half and a third of the connections (the rest got them with a later tick's) because the worker threads were busy for most of a tick",
            )?,
            audit_unwritten: counter(
                "audit_unwritten_total",
                "Audit entries not written to disk because the writer was behind",
            )?,
            cluster_connected: gauge("cluster_connected", "1 while connected to NATS")?,
            cluster_lag: gauge(
                "cluster_lag_batches",
                "Batches this node is behind the cluster stream",
            )?,
            cluster_gaps_repaired: counter(
                "cluster_gaps_repaired_total",
                "Gaps in the cluster stream filled from the stream",
            )?,
            cluster_resyncs: counter(
                "cluster_resyncs_total",
                "Resync snapshots sent to every session after an unfillable gap",
            )?,
            cluster_unpublished: counter(
                "cluster_unpublished_total",
                "Delivered batches not handed to the cluster stream publisher",
            )?,
            registry,
        })
    }

    /// Counts an `error` sent with the given code.
    pub fn error(&self, code: u16) {
        self.errors.with_label_values(&[&code.to_string()]).inc();
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(|e| MetricsError::Encode(e.to_string()))?;
        String::from_utf8(buf).map_err(|e| MetricsError::Encode(e.to_string()))
    }

    fn sum(v: &IntCounterVec) -> u64 {
        use prometheus::core::Collector;
        v.collect()
            .iter()
            .flat_map(|mf| mf.get_metric().iter())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    pub fn summary(&self) -> MetricsSummary {
        MetricsSummary {
            connections_total: self.connections_total.get(),
            connections_active: self.connections_active.get(),
            messages_received: self.messages_received.get(),
            messages_sent: self.messages_sent.get(),
            batches: self.batches.get(),
            items: self.items.get(),
            seq: self.seq.get(),
            tick: self.tick.get(),
            characters: self.characters.get(),
            errors: Self::sum(&self.errors),
            evictions: Self::sum(&self.evictions),
        }
    }
}

/// The `metrics` command's result: the counters plus the connection pool.
pub(crate) fn metrics_reply(metrics: &Metrics, pool: &crate::conn::Pool) -> Value {
    let mut data = serde_json::to_value(metrics.summary()).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut data {
        map.insert(
            "pool".into(),
            json!({ "active": pool.active(), "max": pool.max() }),
        );
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_required_series() {
        let m = Metrics::new().expect("metrics");
        m.connections_total.inc();
        m.connections_active.set(1);
        m.messages_sent.inc_by(3);
        m.error(1001);
        let text = m.render().expect("render");
        for name in [
            "simcast_connections_total 1",
            "simcast_connections_active 1",
            "simcast_messages_sent_total 3",
            "simcast_messages_received_total 0",
            "simcast_errors_total{code=\"1001\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        assert_eq!(m.summary().errors, 1);
    }
}
