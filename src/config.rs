//! Server configuration: a serde `Config` read from TOML, with every key defaulted.
//!
//! The shipped `config/default.toml` is embedded in the binary (so a fresh clone runs
//! with no files around it) and documents every key. A file given with `--config`
//! overrides it key by key; CLI flags override the file. Validation returns a
//! [`ConfigError`] naming the key and the problem, never a panic.

use crate::protocol::{Role, MAX_TICK_RATE, MIN_TICK_RATE};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The shipped default configuration, embedded at build time.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// `key` must not be 0.
fn greater_than_zero<T: Default + PartialEq>(key: &str, value: T) -> Result<(), ConfigError> {
    if value == T::default() {
        return Err(invalid(key, "must be greater than 0"));
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub pool: PoolConfig,
    pub session: SessionConfig,
    pub broker: BrokerConfig,
    pub sim: SimConfig,
    pub persistence: PersistenceConfig,
    pub cluster: ClusterConfig,
}

/// What this process is in a simcast cluster (issue 11). The names are fixed: nodes are
/// started with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRole {
    /// One process does everything and needs no NATS: the server as it has always been.
    #[default]
    Standalone,
    /// Runs the simulation and the batcher, publishes every numbered batch to the
    /// JetStream stream and answers commands and snapshot requests over NATS.
    Sim,
    /// Runs no simulation: serves its own clients from the stream.
    Gateway,
}

/// `[cluster]`: the role and, unless standalone, the NATS server and JetStream stream
/// the nodes share.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub role: ClusterRole,
    /// `nats://host:port` (or `tls://`); several servers of one NATS cluster separated
    /// by commas. Required unless `role` is standalone.
    pub nats_url: String,
    /// The JetStream stream's name.
    pub stream: String,
    /// Subject prefix: batches on `<subject>.batches`, commands on `<subject>.cmd`,
    /// snapshot requests on `<subject>.snapshot`.
    pub subject: String,
    /// The stream drops batches older than this (seconds).
    pub max_age_s: u64,
    /// The stream drops its oldest batches past this many bytes.
    pub max_bytes: u64,
}

/// The smallest `cluster.max_bytes`: NATS's default largest message (1 MiB), so the
/// stream can hold at least one batch.
pub const MIN_STREAM_BYTES: u64 = 1 << 20;

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            role: ClusterRole::Standalone,
            nats_url: String::new(),
            stream: "SIMCAST".into(),
            subject: "simcast".into(),
            max_age_s: 3600,
            max_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceConfig {
    /// The data directory; empty means `default_data_dir()`.
    pub dir: String,
    /// A snapshot every this many ticks (0: only on `save` and at shutdown).
    pub snapshot_interval_ticks: u64,
    /// Move existing data aside and start a new world (`--fresh`); not a file key.
    #[serde(skip)]
    pub fresh: bool,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        PersistenceConfig {
            dir: String::new(),
            snapshot_interval_ticks: 600,
            fresh: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub allowed_origins: Vec<String>,
    pub max_message_bytes: usize,
    pub workers: usize,
    /// When false, `/ws` refuses upgrades (503) and clients must use `/events`; for
    /// networks that block WebSocket, and for testing the dashboard's SSE fallback.
    pub websocket_enabled: bool,
    /// How long a new connection may take to send its request head (slowloris guard).
    pub client_request_timeout_ms: u64,
    /// `[server.tls]`: both files set = https:// and wss://; both empty = plain HTTP.
    pub tls: TlsConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first).
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty() || !self.key_file.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub auth_timeout_ms: u64,
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: String,
    pub role: Role,
    /// The label others see for what this token does (control items, presence); never
    /// the token itself. Absent: `<role>-<n>`, n counting that role's tokens from 1.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    pub heartbeat_interval_ms: u64,
    pub client_timeout_ms: u64,
    pub rate_limit_messages: u32,
    pub rate_limit_window_ms: u64,
    pub outbound_queue: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub max_batch_size: usize,
    pub max_batch_wait_ms: u64,
    pub history_size: usize,
    /// While deliveries keep the worker threads busy for most of a tick, each tick goes
    /// to the slices of the connections that waited longest, the rest getting it with a
    /// later tick's (`broker::pacing`); `false` delivers every tick to everyone at its
    /// end. `hold_when_behind`, its name before, is still accepted (with a warning, see
    /// [`RENAMED_KEYS`]).
    #[serde(alias = "hold_when_behind")]
    pub stagger_when_behind: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    pub seed: u64,
    pub characters: usize,
    pub tick_rate: f64,
    /// Ticks of the past `view_at` can rebuild (at least; `sim::timeline`).
    pub history_ticks: u64,
    /// A checkpoint of the whole state every this many ticks.
    pub checkpoint_every: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
            allowed_origins: Vec::new(),
            max_message_bytes: 65536,
            workers: 0,
            websocket_enabled: true,
            client_request_timeout_ms: 5000,
            tls: TlsConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            auth_timeout_ms: 5000,
            tokens: Vec::new(),
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 1000,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            heartbeat_interval_ms: 5000,
            client_timeout_ms: 30000,
            rate_limit_messages: 100,
            rate_limit_window_ms: 60000,
            outbound_queue: 256,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            max_batch_size: 100,
            max_batch_wait_ms: 50,
            history_size: 1024,
            stagger_when_behind: true,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            characters: 200,
            tick_rate: 10.0,
            history_ticks: 1440,
            checkpoint_every: 100,
        }
    }
}

/// Keys renamed since, still accepted under their old name (a serde `alias`): (section,
/// old key, new key). A file that uses an old name logs [`renamed_key_warnings`].
pub const RENAMED_KEYS: &[(&str, &str, &str)] =
    &[("broker", "hold_when_behind", "stagger_when_behind")];

/// One warning per old key name (see [`RENAMED_KEYS`]) that `text` uses, naming the new
/// key. Text that is not TOML earns none here: parsing it reports the error.
pub fn renamed_key_warnings(text: &str) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    RENAMED_KEYS
        .iter()
        .filter(|(section, old, _)| {
            let section = table.get(*section).and_then(toml::Value::as_table);
            section.is_some_and(|s| s.contains_key(*old))
        })
        .map(|(section, old, new)| {
            format!("`{section}.{old}` is the old name of `{section}.{new}`: rename it")
        })
        .collect()
}

impl Config {
    /// Parses TOML text; `origin` names it in errors (a path or "embedded default").
    /// Old key names are accepted, each with a warning in the log.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.validate()?;
        for warning in renamed_key_warnings(text) {
            log::warn!("{origin}: {warning}");
        }
        Ok(config)
    }

    /// The embedded default.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::from_toml(DEFAULT_TOML, "embedded default")
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// Checks every value a type cannot express; the error names the key. Sections in
    /// file order, each key in its section's order: the first problem is the one told.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.auth.validate()?;
        greater_than_zero("pool.max_connections", self.pool.max_connections)?;
        self.session.validate()?;
        self.broker.validate()?;
        self.sim.validate()?;
        self.cluster.validate()
    }

    /// The data directory for `save`.
    pub fn data_dir(&self) -> std::path::PathBuf {
        if self.persistence.dir.is_empty() {
            default_data_dir()
        } else {
            std::path::PathBuf::from(&self.persistence.dir)
        }
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.session.heartbeat_interval_ms)
    }

    pub fn client_timeout(&self) -> Duration {
        Duration::from_millis(self.session.client_timeout_ms)
    }

    pub fn auth_timeout(&self) -> Duration {
        Duration::from_millis(self.auth.auth_timeout_ms)
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.bind.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "server.bind",
                format!("`{}` is not host:port ({e})", self.bind),
            )
        })?;
        if self.max_message_bytes < 128 {
            return Err(invalid("server.max_message_bytes", "must be at least 128"));
        }
        greater_than_zero(
            "server.client_request_timeout_ms",
            self.client_request_timeout_ms,
        )?;
        if self.tls.cert_file.is_empty() != self.tls.key_file.is_empty() {
            return Err(invalid(
                "server.tls",
                "set both cert_file and key_file, or neither",
            ));
        }
        Ok(())
    }
}

impl AuthConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        greater_than_zero("auth.auth_timeout_ms", self.auth_timeout_ms)?;
        for (i, t) in self.tokens.iter().enumerate() {
            if t.token.trim().is_empty() {
                return Err(invalid(
                    &format!("auth.tokens[{i}].token"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

impl SessionConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        greater_than_zero("session.heartbeat_interval_ms", self.heartbeat_interval_ms)?;
        if self.client_timeout_ms <= self.heartbeat_interval_ms {
            return Err(invalid(
                "session.client_timeout_ms",
                "must be greater than session.heartbeat_interval_ms",
            ));
        }
        greater_than_zero("session.rate_limit_messages", self.rate_limit_messages)?;
        greater_than_zero("session.rate_limit_window_ms", self.rate_limit_window_ms)?;
        if self.outbound_queue < 2 {
            return Err(invalid("session.outbound_queue", "must be at least 2"));
        }
        Ok(())
    }
}

impl BrokerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        greater_than_zero("broker.max_batch_size", self.max_batch_size)?;
        greater_than_zero("broker.history_size", self.history_size)
    }
}

impl SimConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_TICK_RATE..=MAX_TICK_RATE).contains(&self.tick_rate) {
            return Err(invalid(
                "sim.tick_rate",
                format!("must be between {MIN_TICK_RATE} and {MAX_TICK_RATE}"),
            ));
        }
        if self.characters > 1_000_000 {
            return Err(invalid("sim.characters", "must be at most 1000000"));
        }
        if self.checkpoint_every == 0 {
            return Err(invalid("sim.checkpoint_every", "must be greater than 0"));
        }
        Ok(())
    }
}

impl ClusterConfig {
    /// Whether this process talks to NATS at all.
    pub fn clustered(&self) -> bool {
        self.role != ClusterRole::Standalone
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.nats_url.trim().is_empty() {
            if self.clustered() {
                return Err(invalid(
                    "cluster.nats_url",
                    "is required when cluster.role is sim or gateway",
                ));
            }
        } else {
            validate_nats_url(&self.nats_url)?;
        }
        validate_stream_name(&self.stream)?;
        validate_subject_prefix(&self.subject)?;
        greater_than_zero("cluster.max_age_s", self.max_age_s)?;
        if self.max_bytes < MIN_STREAM_BYTES {
            return Err(invalid(
                "cluster.max_bytes",
                format!("must be at least {MIN_STREAM_BYTES} (1 MiB)"),
            ));
        }
        Ok(())
    }
}

/// Each comma-separated server must be `nats://host[:port]` or `tls://host[:port]`.
fn validate_nats_url(urls: &str) -> Result<(), ConfigError> {
    for url in urls.split(',').map(str::trim) {
        let host = url
            .strip_prefix("nats://")
            .or_else(|| url.strip_prefix("tls://"));
        if host.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
            return Err(invalid(
                "cluster.nats_url",
                format!("`{url}` is not nats://host:port (or tls://host:port)"),
            ));
        }
    }
    Ok(())
}

/// JetStream stream names: not empty, no whitespace, `.`, `*`, `>`, `/` or `\`.
fn validate_stream_name(name: &str) -> Result<(), ConfigError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c);
    if name.is_empty() || name.contains(bad) {
        return Err(invalid(
            "cluster.stream",
            format!(
                "`{name}` is not a JetStream stream name (no spaces, `.`, `*`, `>`, `/`, `\\`)"
            ),
        ));
    }
    Ok(())
}

/// A subject prefix: dot-separated non-empty tokens, no wildcards, no whitespace.
fn validate_subject_prefix(prefix: &str) -> Result<(), ConfigError> {
    let bad_token = |t: &str| {
        t.is_empty()
            || t.contains(|c: char| c.is_whitespace() || c.is_control() || c == '*' || c == '>')
    };
    if prefix.split('.').any(bad_token) {
        return Err(invalid(
            "cluster.subject",
            format!(
                "`{prefix}` is not a subject prefix (dot-separated tokens, no wildcards or spaces)"
            ),
        ));
    }
    Ok(())
}

/// The default data directory: `$XDG_DATA_HOME/simcast`, else
/// `$HOME/.local/share/simcast`, else `simcast-data` under the system temp dir.
pub fn default_data_dir() -> std::path::PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return std::path::PathBuf::from(xdg).join("simcast");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return std::path::PathBuf::from(home).join(".local/share/simcast");
    }
    std::env::temp_dir().join("simcast-data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_matches_defaults() {
        let c = Config::embedded().expect("embedded default is valid");
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert_eq!(c.server.max_message_bytes, 65536);
        assert_eq!(c.auth.auth_timeout_ms, 5000);
        assert_eq!(c.pool.max_connections, 1000);
        assert_eq!(c.session.heartbeat_interval_ms, 5000);
        assert_eq!(c.session.client_timeout_ms, 30000);
        assert_eq!(c.session.rate_limit_messages, 100);
        assert_eq!(c.session.rate_limit_window_ms, 60000);
        assert_eq!(c.broker.max_batch_size, 100);
        assert_eq!(c.broker.max_batch_wait_ms, 50);
        assert_eq!(c.broker.history_size, 1024);
        assert!(c.broker.stagger_when_behind);
        assert_eq!(c.sim.seed, 42);
        assert_eq!(c.sim.characters, 200);
        assert_eq!(c.sim.tick_rate, 10.0);
        assert!(c.auth.tokens.is_empty());
        assert_eq!(c.cluster, ClusterConfig::default());
        assert_eq!(c.cluster.role, ClusterRole::Standalone);
        assert!(!c.cluster.clustered());
        assert_eq!(
            (c.cluster.stream.as_str(), c.cluster.subject.as_str()),
            ("SIMCAST", "simcast")
        );
        assert_eq!(
            (c.cluster.max_age_s, c.cluster.max_bytes),
            (3600, 256 << 20)
        );
    }

    #[test]
    fn cluster_roles_and_their_nats_url() {
        for (role, expected) in [
            ("standalone", ClusterRole::Standalone),
            ("sim", ClusterRole::Sim),
            ("gateway", ClusterRole::Gateway),
        ] {
            let text =
                format!("[cluster]\nrole = \"{role}\"\nnats_url = \"nats://127.0.0.1:4333\"");
            let c = Config::from_toml(&text, "t").expect(role);
            assert_eq!(c.cluster.role, expected);
            assert_eq!(c.cluster.nats_url, "nats://127.0.0.1:4333");
        }
        let three =
            "[cluster]\nrole = \"gateway\"\nnats_url = \"nats://a:4222, nats://b:4222,tls://c\"";
        assert!(
            Config::from_toml(three, "t").is_ok(),
            "a NATS cluster's servers"
        );
        let standalone = Config::from_toml("[cluster]\nrole = \"standalone\"", "t");
        assert!(standalone.is_ok(), "standalone needs no NATS");
    }

    #[test]
    fn bad_cluster_values_name_the_key() {
        let cases = [
            ("[cluster]\nrole = \"sim\"", "cluster.nats_url"),
            (
                "[cluster]\nrole = \"gateway\"\nnats_url = \" \"",
                "cluster.nats_url",
            ),
            (
                "[cluster]\nrole = \"sim\"\nnats_url = \"http://x:1\"",
                "cluster.nats_url",
            ),
            ("[cluster]\nnats_url = \"nats://\"", "cluster.nats_url"),
            ("[cluster]\nrole = \"leader\"", "role"),
            ("[cluster]\nstream = \"a.b\"", "cluster.stream"),
            ("[cluster]\nstream = \"\"", "cluster.stream"),
            ("[cluster]\nsubject = \"a..b\"", "cluster.subject"),
            ("[cluster]\nsubject = \"a.*\"", "cluster.subject"),
            ("[cluster]\nmax_age_s = 0", "cluster.max_age_s"),
            ("[cluster]\nmax_bytes = 1000", "cluster.max_bytes"),
            ("[cluster]\nnats = \"x\"", "nats"),
        ];
        for (text, key) in cases {
            let err = Config::from_toml(text, "test.toml")
                .expect_err(text)
                .to_string();
            assert!(err.contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let c = Config::from_toml(
            "[sim]\nseed = 7\n[[auth.tokens]]\ntoken = \"v\"\nrole = \"viewer\"\n",
            "t",
        )
        .expect("valid");
        assert_eq!(c.sim.seed, 7);
        assert_eq!(c.sim.characters, 200);
        assert_eq!(c.auth.tokens[0].role, Role::Viewer);
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("[server]\nbind = \"nowhere\"", "server.bind"),
            ("[pool]\nmax_connections = 0", "pool.max_connections"),
            ("[sim]\ntick_rate = 0.0", "sim.tick_rate"),
            (
                "[session]\nclient_timeout_ms = 10",
                "session.client_timeout_ms",
            ),
            ("[sim]\nseed = \"x\"", "seed"),
            ("[sim]\nsed = 1", "sed"),
            ("[[auth.tokens]]\ntoken = \"a\"\nrole = \"admin\"", "role"),
        ];
        for (text, key) in cases {
            let err = Config::from_toml(text, "test.toml")
                .expect_err(text)
                .to_string();
            assert!(err.contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn the_old_name_of_stagger_when_behind_still_works_and_earns_a_warning() {
        let old = "[broker]\nhold_when_behind = false\n";
        let c = Config::from_toml(old, "old.toml").expect("the old name is accepted");
        assert!(!c.broker.stagger_when_behind, "and means the same");
        assert_eq!(
            renamed_key_warnings(old),
            [
                "`broker.hold_when_behind` is the old name of `broker.stagger_when_behind`: \
              rename it"
            ]
        );
        let new = "[broker]\nstagger_when_behind = false\n";
        let c = Config::from_toml(new, "new.toml").expect("valid");
        assert!(!c.broker.stagger_when_behind);
        assert!(
            renamed_key_warnings(new).is_empty(),
            "no warning for the new name"
        );
        assert!(renamed_key_warnings(super::DEFAULT_TOML).is_empty());
        let both = "[broker]\nhold_when_behind = false\nstagger_when_behind = true\n";
        let err = Config::from_toml(both, "both.toml").expect_err("one setting, two values");
        assert!(err.to_string().contains("stagger_when_behind"), "{err}");
    }
}
