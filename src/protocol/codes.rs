//! The codes of protocol v1: application error codes (`error.data.code`) and the
//! WebSocket close codes and reasons the server uses. Numbers and reasons are part of
//! the contract (`docs/protocol.md`); nothing else lives here.

/// Application error codes carried in `error.data.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown type or cmd, missing or ill-typed field,
    /// binary frame, unknown character or event id.
    InvalidMessage = 1001,
    /// A command the role may not run; `auth` sent twice.
    AuthFailed = 1002,
    /// Over the per-connection message budget; the message was not executed.
    RateLimit = 1003,
    /// The server failed to do what was asked.
    ServerError = 1004,
}

impl ErrorCode {
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

/// WebSocket close codes the server uses.
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Invalid token, authentication timeout, or flooding past twice the rate budget.
    pub const POLICY: u16 = 1008;
    /// A frame over `max_message_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// The connection pool is full.
    pub const TRY_AGAIN: u16 = 1013;

    pub const REASON_INVALID_TOKEN: &str = "Invalid token";
    pub const REASON_AUTH_TIMEOUT: &str = "Authentication timeout";
    pub const REASON_POOL_FULL: &str = "Maximum connections reached";
    pub const REASON_RATE: &str = "Rate limit exceeded";
    pub const REASON_TOO_BIG: &str = "Message too big";
    pub const REASON_TIMEOUT: &str = "Client timeout";
    pub const REASON_SHUTDOWN: &str = "Server shutting down";
}
