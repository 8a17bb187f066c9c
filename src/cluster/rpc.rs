//! Request/reply between gateways and the sim node over core NATS: a gateway's client
//! commands on `<prefix>.cmd`, snapshot requests (a join, a resync) on
//! `<prefix>.snapshot` and time series reads (`GET /api/timeseries`) on
//! `<prefix>.series`. Every request ends within [`RPC_TIMEOUT`]: with a reply, with
//! [`RpcError::NoResponders`] at once when no sim node is subscribed (the server says
//! so; headers-era no-responders, nats-server 2.2+), or with [`RpcError::Timeout`] when
//! one is subscribed but silent, or NATS itself is unreachable. The gateway turns both
//! into error 1004 for its client and keeps the connection. Payloads are bytes here;
//! what they hold is for the callers to agree on.

use super::link::Link;
use super::Subjects;
use async_nats::{Client, RequestErrorKind, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;

/// The longest a command or snapshot request waits for its reply.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Which of the two request subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Command,
    Snapshot,
    Series,
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("no reply on {subject} within {timeout:?}")]
    Timeout { subject: String, timeout: Duration },
    #[error("nobody answers on {subject} (is the sim node running?)")]
    NoResponders { subject: String },
    #[error("request on {subject}: {source}")]
    Request {
        subject: String,
        source: async_nats::RequestError,
    },
    #[error("subscribing to {subject}: {source}")]
    Subscribe {
        subject: String,
        source: async_nats::SubscribeError,
    },
    #[error("registering the subscription to {subject}: {source}")]
    Flush {
        subject: String,
        source: async_nats::client::FlushError,
    },
    #[error("a request on {subject} came without a reply subject")]
    NoReplySubject { subject: String },
    #[error("replying: {0}")]
    Reply(#[source] async_nats::PublishError),
}

/// Both sides of the request/reply of one cluster.
#[derive(Clone)]
pub struct Rpc {
    client: Client,
    subjects: Subjects,
    timeout: Duration,
}

impl Rpc {
    pub fn new(link: &Link, subjects: Subjects) -> Self {
        Rpc {
            client: link.client().clone(),
            subjects,
            timeout: RPC_TIMEOUT,
        }
    }

    fn subject(&self, call: Call) -> &str {
        match call {
            Call::Command => &self.subjects.cmd,
            Call::Snapshot => &self.subjects.snapshot,
            Call::Series => &self.subjects.series,
        }
    }

    /// Sends a request and waits for its reply, at most [`RPC_TIMEOUT`].
    pub async fn request(&self, call: Call, payload: Bytes) -> Result<Bytes, RpcError> {
        let subject = self.subject(call).to_owned();
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(self.timeout));
        let sent = self.client.send_request(subject.clone(), request);
        // The client enforces the timeout itself; this bounds it even if it did not.
        let outcome = tokio::time::timeout(self.timeout + Duration::from_millis(500), sent).await;
        match outcome {
            Ok(Ok(reply)) => Ok(reply.payload),
            Ok(Err(e)) => Err(match e.kind() {
                RequestErrorKind::TimedOut => RpcError::Timeout {
                    subject,
                    timeout: self.timeout,
                },
                RequestErrorKind::NoResponders => RpcError::NoResponders { subject },
                _ => RpcError::Request { subject, source: e },
            }),
            Err(_) => Err(RpcError::Timeout {
                subject,
                timeout: self.timeout,
            }),
        }
    }

    /// The sim node's side: subscribes to `call`'s subject and returns once the server
    /// has the subscription (so a request sent right after finds a responder).
    pub async fn serve(&self, call: Call) -> Result<Requests, RpcError> {
        let subject = self.subject(call).to_owned();
        let subscriber = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|source| RpcError::Subscribe {
                subject: subject.clone(),
                source,
            })?;
        self.client
            .flush()
            .await
            .map_err(|source| RpcError::Flush {
                subject: subject.clone(),
                source,
            })?;
        Ok(Requests {
            subscriber,
            client: self.client.clone(),
            subject,
        })
    }
}

/// Requests arriving on one subject.
pub struct Requests {
    subscriber: async_nats::Subscriber,
    client: Client,
    subject: String,
}

impl Requests {
    /// The next request; `None` once the subscription is closed.
    pub async fn next(&mut self) -> Option<Incoming> {
        let message = self.subscriber.next().await?;
        Some(Incoming {
            payload: message.payload,
            reply: message.reply,
            client: self.client.clone(),
            subject: self.subject.clone(),
        })
    }
}

/// One request, to be answered once.
pub struct Incoming {
    pub payload: Bytes,
    reply: Option<Subject>,
    client: Client,
    subject: String,
}

impl Incoming {
    /// The largest payload the NATS server takes (`max_payload`, 1 MiB by default): a
    /// longer answer would never arrive.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    pub async fn respond(self, payload: Bytes) -> Result<(), RpcError> {
        let reply = self.reply.ok_or(RpcError::NoReplySubject {
            subject: self.subject,
        })?;
        self.client
            .publish(reply, payload)
            .await
            .map_err(RpcError::Reply)
    }
}
