//! Why the server refuses or ends a connection: one value per reason, carrying its
//! close code, its reason text and the metric it is counted under, so every place that
//! closes (WebSocket close frames, SSE's HTTP answers) says and counts the same thing.

use crate::metrics::Metrics;
use crate::protocol::close;

/// Close code for a frame that breaks RFC 6455's framing rules.
const PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text message that is not UTF-8 (RFC 6455 §8.1).
const INVALID_PAYLOAD: u16 = 1007;
/// Normal closure (RFC 6455 §7.4.1), used for a client that went silent.
const NORMAL: u16 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// The connection pool is full.
    PoolFull,
    /// The `Origin` header is not allowed (HTTP 403 before any upgrade).
    Origin,
    /// A wrong token, or anything but `auth` before authentication.
    InvalidToken,
    /// No `auth` within `auth_timeout`.
    AuthTimeout,
    /// More than twice the rate budget.
    RateLimited,
    /// A message over `max_message_bytes`.
    TooBig,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// A frame that breaks the framing rules.
    Protocol,
    /// Silent for `client_timeout`.
    ClientTimeout,
}

/// The counter a rejection goes into, with its label.
enum Counter {
    Rejected(&'static str),
    Evicted(&'static str),
    None,
}

impl Reject {
    pub(crate) fn code(self) -> u16 {
        match self {
            Reject::PoolFull => close::TRY_AGAIN,
            Reject::Origin | Reject::InvalidToken | Reject::AuthTimeout | Reject::RateLimited => {
                close::POLICY
            }
            Reject::TooBig => close::TOO_BIG,
            Reject::InvalidUtf8 => INVALID_PAYLOAD,
            Reject::Protocol => PROTOCOL_ERROR,
            Reject::ClientTimeout => NORMAL,
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Reject::PoolFull => close::REASON_POOL_FULL,
            Reject::Origin => "Origin not allowed",
            Reject::InvalidToken => close::REASON_INVALID_TOKEN,
            Reject::AuthTimeout => close::REASON_AUTH_TIMEOUT,
            Reject::RateLimited => close::REASON_RATE,
            Reject::TooBig => close::REASON_TOO_BIG,
            Reject::InvalidUtf8 => "Invalid UTF-8 in text message",
            Reject::Protocol => "Protocol error",
            Reject::ClientTimeout => close::REASON_TIMEOUT,
        }
    }

    fn counter(self) -> Counter {
        match self {
            Reject::PoolFull => Counter::Rejected("pool_full"),
            Reject::Origin => Counter::Rejected("origin"),
            Reject::InvalidToken | Reject::AuthTimeout => Counter::Rejected("auth"),
            Reject::RateLimited => Counter::Evicted("rate"),
            Reject::TooBig => Counter::Evicted("too_big"),
            Reject::ClientTimeout => Counter::Evicted("timeout"),
            Reject::InvalidUtf8 | Reject::Protocol => Counter::None,
        }
    }

    /// Counts this rejection in its metric (if it has one).
    pub(crate) fn count(self, metrics: &Metrics) {
        match self.counter() {
            Counter::Rejected(label) => metrics
                .connections_rejected
                .with_label_values(&[label])
                .inc(),
            Counter::Evicted(label) => metrics.evictions.with_label_values(&[label]).inc(),
            Counter::None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc_6455_and_the_contract() {
        assert_eq!(Reject::PoolFull.code(), 1013);
        assert_eq!(Reject::InvalidToken.code(), 1008);
        assert_eq!(Reject::TooBig.code(), 1009);
        assert_eq!(Reject::InvalidUtf8.code(), 1007);
        assert_eq!(Reject::Protocol.code(), 1002);
        assert_eq!(Reject::ClientTimeout.code(), 1000);
    }

    #[test]
    fn each_is_counted_under_its_label() {
        let m = Metrics::new().expect("metrics");
        for r in [
            Reject::InvalidToken,
            Reject::AuthTimeout,
            Reject::RateLimited,
        ] {
            r.count(&m);
        }
        let text = m.render().expect("render");
        assert!(
            text.contains(r#"connections_rejected_total{reason="auth"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"evictions_total{reason="rate"} 1"#),
            "{text}"
        );
    }
}
