//! Scale-out over NATS JetStream (issue 11): the parts a `sim` node and its gateways
//! share, not yet wired into the broker or the sessions.
//!
//! - [`codec`]: a [`crate::broker::batcher::Batch`] as bytes and back, so that a
//!   gateway's frames are byte for byte the sim node's.
//!
//! Public like `broker`: the integration tests against a real nats-server use it.

pub mod codec;
