//! The JetStream stream of numbered batches: the sim node publishes every batch once,
//! under its simcast `seq`; a gateway reads every stored batch after the last `seq` it
//! has, in order, and is told when that is older than what the stream still holds (its
//! clients then resync from a snapshot) or when a batch is missing on the way (a gap is
//! never silent).
//!
//! What of JetStream it uses, all in nats-server 2.9 (async-nats is built without its
//! `server_2_10+` features, so nothing newer can even be expressed):
//! - a stream with file storage, one subject (`<prefix>.batches`), limits retention with
//!   `max_msgs` = `broker.history_size`, `max_age`, `max_bytes`, discard old, and a
//!   duplicate window of [`DUPLICATE_WINDOW`] (all since 2.2);
//! - `Nats-Msg-Id` = seq, so a sim node that republishes a batch after a restart does
//!   not store it twice (since 2.2); the publish waits for the stream's ack;
//! - `STREAM.MSG.GET` by stream sequence (since 2.2; not Direct Get, which needs
//!   `allow_direct`), to find where a reader must start;
//! - an ordered pull consumer (async-nats `pull::OrderedConfig`: ephemeral, ack policy
//!   none, memory storage, one replica) from `DeliverPolicy::ByStartSequence`: pull
//!   consumers without acks and the pull requests' idle heartbeats are 2.9.0's. The
//!   reader reopens it after the last batch it gave when the link reconnects or the
//!   consumer fails, so a reader survives NATS restarts.
//!
//! The simcast `seq` and the stream sequence are mapped through the [`SEQ_HEADER`]
//! header, never assumed equal: they differ as soon as the stream was created after the
//! world began, or a publish was deduplicated.

use super::link::{Link, LinkState};
use crate::config::ClusterConfig;
use async_nats::jetstream::{self, consumer::pull, context, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::watch;

/// The header carrying a batch's simcast `seq` (decimal).
pub const SEQ_HEADER: &str = "Simcast-Seq";
/// Bounds every JetStream API request and every awaited publish ack.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);
/// A republish of the same `seq` within this time is dropped by the stream (NATS's own
/// default, made explicit; never longer than `max_age`, which the server requires).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How often [`BatchStream::read_after`] starts its search over when a batch it looked
/// at was dropped (aged out) in between.
const SEARCH_TRIES: usize = 3;

/// The stream's name, subject and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub name: String,
    pub subject: String,
    /// Batches kept (`broker.history_size`).
    pub max_msgs: u64,
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl StreamSettings {
    /// From `[cluster]` and `broker.history_size`.
    pub fn new(cluster: &ClusterConfig, history_size: usize) -> Self {
        StreamSettings {
            name: cluster.stream.clone(),
            subject: super::Subjects::new(&cluster.subject).batches,
            max_msgs: history_size as u64,
            max_age: Duration::from_secs(cluster.max_age_s),
            max_bytes: cluster.max_bytes,
        }
    }

    fn to_config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: vec![self.subject.clone()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_messages: i64::try_from(self.max_msgs).unwrap_or(i64::MAX),
            max_age: self.max_age,
            max_bytes: i64::try_from(self.max_bytes).unwrap_or(i64::MAX),
            duplicate_window: DUPLICATE_WINDOW.min(self.max_age),
            num_replicas: 1,
            description: Some("simcast batches (issue 11)".into()),
            ..Default::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("JetStream stream {stream}: {source}")]
    Ensure {
        stream: String,
        source: context::CreateStreamError,
    },
    #[error("JetStream stream {stream}: {source}")]
    Open {
        stream: String,
        source: context::GetStreamError,
    },
    #[error("publishing batch {seq}: {source}")]
    Publish {
        seq: u64,
        source: context::PublishError,
    },
    #[error("stream info: {0}")]
    Info(#[source] stream::InfoError),
    #[error("reading stream message {stream_seq}: {source}")]
    Get {
        stream_seq: u64,
        source: stream::RawMessageError,
    },
    #[error("stream message {stream_seq} has no valid {SEQ_HEADER} header")]
    BadHeader { stream_seq: u64 },
    #[error("the stream kept changing while looking for the batch after {after}")]
    Unstable { after: u64 },
    #[error("opening a reader at stream sequence {start}: {source}")]
    Consumer {
        start: u64,
        source: stream::ConsumerError,
    },
    #[error("opening a reader at stream sequence {start}: {source}")]
    Messages {
        start: u64,
        source: jetstream::consumer::StreamError,
    },
    #[error("reading batches: {0}")]
    Read(#[source] pull::OrderedError),
    #[error("a delivered message is not a JetStream message: {0}")]
    NotJetStream(String),
    #[error("the batch reader ended")]
    Ended,
}

/// What the stream said to a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The stream sequence the batch is stored under.
    pub stream_seq: u64,
    /// The stream already had this `seq` (within [`DUPLICATE_WINDOW`]): nothing stored.
    pub duplicate: bool,
}

/// One stored batch as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBatch {
    /// The simcast `seq`.
    pub seq: u64,
    pub stream_seq: u64,
    /// Batches stored after this one, not yet delivered to this reader: how far it is
    /// behind the stream.
    pub pending: u64,
    /// The bytes as published (see [`super::codec`]).
    pub payload: Bytes,
}

/// Where reading after a `seq` begins.
pub enum ReadStart {
    /// Boxed: a reader is a few hundred bytes, the other answer two numbers.
    Reader(Box<BatchReader>),
    /// The stream no longer holds the batch after `after`: its oldest is `oldest`.
    /// The caller resyncs (a snapshot) and reads after the snapshot's `seq` instead.
    Expired { after: u64, oldest: u64 },
}

/// The stream, made sure of, for publishing and reading.
pub struct BatchStream {
    js: jetstream::Context,
    store: Store,
    settings: StreamSettings,
    link: watch::Receiver<LinkState>,
}

impl BatchStream {
    /// Creates the stream, or updates its limits and subject to `settings` (a changed
    /// `history_size` applies at the next start); nodes of one cluster share it.
    pub async fn ensure(link: &Link, settings: StreamSettings) -> Result<Self, StreamError> {
        let js = jetstream::ContextBuilder::new()
            .timeout(API_TIMEOUT)
            .build(link.client().clone());
        let name = settings.name.clone();
        js.create_or_update_stream(settings.to_config())
            .await
            .map_err(|source| StreamError::Ensure {
                stream: name.clone(),
                source,
            })?;
        let stream = js
            .get_stream_no_info(&name)
            .await
            .map_err(|source| StreamError::Open {
                stream: name,
                source,
            })?;
        let store = Store {
            stream,
            subject: settings.subject.clone(),
        };
        Ok(BatchStream {
            js,
            store,
            settings,
            link: link.watch(),
        })
    }

    /// Publishes one numbered batch and waits for the stream's ack (at most
    /// [`API_TIMEOUT`]). `Nats-Msg-Id` and [`SEQ_HEADER`] are `seq`.
    pub async fn publish_batch(&self, seq: u64, payload: Bytes) -> Result<Published, StreamError> {
        let id = seq.to_string();
        let message = jetstream::message::PublishMessage::build()
            .payload(payload)
            .message_id(&id)
            .header(SEQ_HEADER, id.as_str());
        let publish_error = |source| StreamError::Publish { seq, source };
        let ack = self
            .js
            .send_publish(self.settings.subject.clone(), message)
            .await
            .map_err(publish_error)?
            .await
            .map_err(publish_error)?;
        Ok(Published {
            stream_seq: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// The simcast `seq` of the newest stored batch; `None` when the stream is empty.
    pub async fn last_seq(&self) -> Result<Option<u64>, StreamError> {
        for _ in 0..SEARCH_TRIES {
            let state = self.store.state().await?;
            if state.messages == 0 {
                return Ok(None);
            }
            match self.store.seq_at(state.last_sequence).await {
                Err(e) if is_gone(&e) => continue,
                other => return other.map(Some),
            }
        }
        Err(StreamError::Unstable { after: 0 })
    }

    /// Every stored batch after `after`, in order, then the new ones as they come.
    pub async fn read_after(&self, after: u64) -> Result<ReadStart, StreamError> {
        let start = match self.store.locate(after).await? {
            Located::At(start) => start,
            Located::Expired { oldest, .. } => return Ok(ReadStart::Expired { after, oldest }),
        };
        let messages = self.store.open(start).await?;
        let mut link = self.link.clone();
        link.mark_unchanged();
        Ok(ReadStart::Reader(Box::new(BatchReader {
            store: self.store.clone(),
            link: Some(link),
            messages: Some(messages),
            expected: after.saturating_add(1),
            pending: None,
            reopen_failures: 0,
        })))
    }
}

/// The stream handle and its subject: what finding and opening a reader need.
#[derive(Clone)]
struct Store {
    /// Without the cached info: the state is asked for when needed.
    stream: stream::Stream<()>,
    subject: String,
}

enum Located {
    /// Read from this stream sequence.
    At(u64),
    /// The batch wanted is gone; the oldest held is `oldest`, at stream sequence `first`.
    Expired { oldest: u64, first: u64 },
}

impl Store {
    async fn state(&self) -> Result<stream::State, StreamError> {
        let info = self.stream.get_info().await.map_err(StreamError::Info)?;
        Ok(info.state)
    }

    /// The simcast `seq` of the message at `stream_seq`.
    async fn seq_at(&self, stream_seq: u64) -> Result<u64, StreamError> {
        let message = self
            .stream
            .get_raw_message(stream_seq)
            .await
            .map_err(|source| StreamError::Get { stream_seq, source })?;
        header_seq(&message.headers).ok_or(StreamError::BadHeader { stream_seq })
    }

    /// The stream sequence of the first batch after `after`, tried again when the
    /// stream drops a batch under the search.
    async fn locate(&self, after: u64) -> Result<Located, StreamError> {
        for _ in 0..SEARCH_TRIES {
            match self.try_locate(after).await {
                Err(e) if is_gone(&e) => continue,
                other => return other,
            }
        }
        Err(StreamError::Unstable { after })
    }

    /// Batches are stored in `seq` order, so the first one after `after` is found by a
    /// guess (stream and simcast sequences a constant apart, the usual case: one get)
    /// and otherwise a binary search over the stream's range.
    async fn try_locate(&self, after: u64) -> Result<Located, StreamError> {
        let state = self.state().await?;
        if state.messages == 0 {
            // Nothing held: start at the next batch stored; the reader reports a gap
            // if that is not `after + 1`.
            return Ok(Located::At(state.last_sequence + 1));
        }
        let (first, last) = (state.first_sequence, state.last_sequence);
        let wanted = after.saturating_add(1);
        let oldest = self.seq_at(first).await?;
        if oldest > wanted {
            return Ok(Located::Expired { oldest, first });
        }
        if oldest == wanted {
            return Ok(Located::At(first));
        }
        let guess = first + (wanted - oldest);
        if guess <= last && self.seq_at(guess).await? == wanted {
            return Ok(Located::At(guess));
        }
        // Invariant: the batch at `lo` is at or before `after`; `hi` is past it or the
        // end (`last + 1`: nothing stored is after `after`, wait for the next).
        let (mut lo, mut hi) = (first, last + 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.seq_at(mid).await? > after {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(Located::At(hi))
    }

    /// An ordered consumer from stream sequence `start`.
    async fn open(&self, start: u64) -> Result<Box<pull::Ordered>, StreamError> {
        let config = pull::OrderedConfig {
            filter_subject: self.subject.clone(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        };
        let consumer = self
            .stream
            .create_consumer(config)
            .await
            .map_err(|source| StreamError::Consumer { start, source })?;
        let messages = consumer
            .messages()
            .await
            .map_err(|source| StreamError::Messages { start, source })?;
        // Boxed: the consumer's state is about 1 KB, and readers are moved around.
        Ok(Box::new(messages))
    }
}

/// A batch the search looked at is no longer there (aged out or dropped meanwhile).
fn is_gone(e: &StreamError) -> bool {
    matches!(e, StreamError::Get { source, .. }
        if source.kind() == stream::RawMessageErrorKind::NoMessageFound)
}

fn header_seq(headers: &async_nats::HeaderMap) -> Option<u64> {
    headers.get(SEQ_HEADER)?.as_str().parse().ok()
}

/// What a reader gives next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The batch with the `seq` expected.
    Batch(StoredBatch),
    /// Batches `expected..found` are not in the stream (dropped before this reader got
    /// to them, or never published). The reader goes on from `found`.
    Gap { expected: u64, found: u64 },
}

/// Batches in `seq` order from an ordered consumer. Batches at or before the last one
/// given are skipped (a republish stored twice, past the duplicate window).
///
/// It reopens its consumer after the last batch it gave when the link comes back after
/// a disconnect or the consumer fails: the client's own recovery of an ordered consumer
/// lost with a restarted server took over a minute (its pull fails with "consumer not
/// found", then it waits for two missed 15 s heartbeats), ours takes one round trip.
pub struct BatchReader {
    store: Store,
    /// Link state changes; `None` once the link is gone for good.
    link: Option<watch::Receiver<LinkState>>,
    /// `None` while it must be reopened.
    messages: Option<Box<pull::Ordered>>,
    /// The `seq` the next batch must have.
    expected: u64,
    /// The batch found past a gap, given at the next call.
    pending: Option<StoredBatch>,
    /// Reopen attempts failed in a row (NATS still away): each next one waits a little.
    reopen_failures: u32,
}

/// What the reader waited for: a value on the stack for one turn of its loop, so its
/// size does not matter (boxing it would cost an allocation per batch).
#[allow(clippy::large_enum_variant)]
enum Woken {
    Message(Option<Result<jetstream::Message, pull::OrderedError>>),
    Link(bool),
}

impl BatchReader {
    /// The `seq` the next batch must have.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// The next batch or gap; waits for the sim node to publish when the reader has
    /// caught up (wrap it in a timeout: it is cancel-safe, nothing is lost). An `Err`
    /// leaves the reader usable: call again, it reopens its consumer.
    pub async fn next(&mut self) -> Result<Next, StreamError> {
        if let Some(batch) = self.pending.take() {
            self.expected = batch.seq + 1;
            return Ok(Next::Batch(batch));
        }
        loop {
            let Some(messages) = self.messages.as_mut() else {
                if let Some(gap) = self.reopen().await? {
                    return Ok(gap);
                }
                continue;
            };
            let woken = match self.link.as_mut() {
                Some(link) => tokio::select! {
                    m = messages.next() => Woken::Message(m),
                    changed = link.changed() => Woken::Link(changed.is_ok()),
                },
                None => Woken::Message(messages.next().await),
            };
            let message = match woken {
                Woken::Link(alive) => {
                    self.on_link_change(alive);
                    continue;
                }
                Woken::Message(None) => return Err(StreamError::Ended),
                Woken::Message(Some(Err(e))) => {
                    log::warn!("batch reader: {e}; reopening after {}", self.expected - 1);
                    self.messages = None;
                    continue;
                }
                Woken::Message(Some(Ok(message))) => message,
            };
            if let Some(next) = self.accept(stored(&message)?) {
                return Ok(next);
            }
        }
    }

    /// Reconnected: the consumer may be gone with the server's memory; reopen it.
    fn on_link_change(&mut self, alive: bool) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if !alive {
            self.link = None;
        } else if *link.borrow_and_update() == LinkState::Connected {
            self.messages = None;
        }
    }

    /// Checks a delivered batch against the `seq` expected.
    fn accept(&mut self, batch: StoredBatch) -> Option<Next> {
        if batch.seq < self.expected {
            return None;
        }
        if batch.seq > self.expected {
            let gap = Next::Gap {
                expected: self.expected,
                found: batch.seq,
            };
            self.pending = Some(batch);
            return Some(gap);
        }
        self.expected = batch.seq + 1;
        Some(Next::Batch(batch))
    }

    /// A new consumer after the last batch given; a gap when the stream no longer
    /// holds the next one.
    async fn reopen(&mut self) -> Result<Option<Next>, StreamError> {
        if self.reopen_failures > 0 {
            let backoff = 100 * u64::from(self.reopen_failures.min(10));
            tokio::time::sleep(Duration::from_millis(backoff)).await;
        }
        self.reopen_failures += 1;
        let after = self.expected - 1;
        let (start, gap) = match self.store.locate(after).await? {
            Located::At(start) => (start, None),
            Located::Expired { oldest, first } => {
                let gap = Next::Gap {
                    expected: self.expected,
                    found: oldest,
                };
                (first, Some(gap))
            }
        };
        self.messages = Some(self.store.open(start).await?);
        self.reopen_failures = 0;
        if let Some(Next::Gap { found, .. }) = gap {
            self.expected = found;
        }
        Ok(gap)
    }
}

fn stored(message: &jetstream::Message) -> Result<StoredBatch, StreamError> {
    let info = message
        .info()
        .map_err(|e| StreamError::NotJetStream(e.to_string()))?;
    let stream_seq = info.stream_sequence;
    let seq = message
        .headers
        .as_ref()
        .and_then(header_seq)
        .ok_or(StreamError::BadHeader { stream_seq })?;
    Ok(StoredBatch {
        seq,
        stream_seq,
        pending: info.pending,
        payload: message.payload.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_cluster_config_and_history() {
        let cluster = ClusterConfig::default();
        let s = StreamSettings::new(&cluster, 1024);
        assert_eq!(s.name, "SIMCAST");
        assert_eq!(s.subject, "simcast.batches");
        assert_eq!(s.max_msgs, 1024);
        let c = s.to_config();
        assert_eq!(c.subjects, vec!["simcast.batches".to_owned()]);
        assert_eq!(c.storage, stream::StorageType::File);
        assert_eq!(c.discard, stream::DiscardPolicy::Old);
        assert_eq!(c.max_messages, 1024);
        assert_eq!(c.max_age, Duration::from_secs(3600));
        assert_eq!(c.max_bytes, 256 << 20);
        assert_eq!(c.duplicate_window, DUPLICATE_WINDOW);
        assert!(!c.allow_direct, "Direct Get is not used");
    }

    #[test]
    fn the_duplicate_window_never_exceeds_max_age() {
        let cluster = ClusterConfig {
            max_age_s: 30,
            ..ClusterConfig::default()
        };
        let c = StreamSettings::new(&cluster, 8).to_config();
        assert_eq!(c.duplicate_window, Duration::from_secs(30));
    }

    #[test]
    fn the_seq_header_is_decimal() {
        let mut h = async_nats::HeaderMap::new();
        assert_eq!(header_seq(&h), None);
        h.insert(SEQ_HEADER, "42");
        assert_eq!(header_seq(&h), Some(42));
        h.insert(SEQ_HEADER, "x");
        assert_eq!(header_seq(&h), None);
    }
}
