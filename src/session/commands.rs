//! The one command dispatch of both transports: WebSocket (`actor.rs`) and
//! `POST /api/command` (`crate::http`).
//!
//! Given a parsed command (or the parse error) and the caller's role, this decides
//! everything a transport would otherwise decide for itself: the role check (which
//! comes before argument errors, so a viewer gets 1002 for `step` however it is
//! spelled), the `metrics` answered here, the `snapshot` handed back to the transport
//! (each fetches it its own way: the WebSocket through the broker, in order with its
//! batches), and every other command sent to the simulation. Results come back as
//! [`Reply`] (which owns `"ok": true`) or as a [`Failure`], counted here once; the
//! transports only write frames or HTTP responses.

use super::SessionShared;
use crate::metrics::metrics_reply;
use crate::ports::RunCommand;
use crate::protocol::{Command, ErrorCode, ProtocolError, Reply, Role, OPERATOR_COMMANDS};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;

/// A command that was refused or failed: the `error` to answer with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub code: ErrorCode,
    pub message: String,
    /// The simulation (or the snapshot path) could not be reached at all.
    pub unavailable: bool,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            unavailable: false,
        }
    }

    /// The server could not do it: error 1004, and `unavailable`.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Failure {
            unavailable: true,
            ..Failure::new(ErrorCode::ServerError, message)
        }
    }

    fn forbidden(cmd: &str) -> Self {
        Failure::new(
            ErrorCode::AuthFailed,
            format!("command `{cmd}` requires the operator role"),
        )
    }
}

/// What a transport does with a command the role may run.
pub(crate) enum Dispatch {
    /// Answered already (`metrics`).
    Reply(Reply),
    /// `snapshot`: the transport fetches it its own way.
    Snapshot,
    /// Sent to the simulation: the answer, once it comes.
    Pending(LocalBoxFuture<'static, Result<Reply, Failure>>),
}

/// The error for a command message that did not parse: 1002 when the role may not run
/// the `cmd` it named at all, else the parse error itself. Counted.
pub(crate) fn refuse(shared: &SessionShared, role: Role, e: &ProtocolError) -> Failure {
    let failure = match e.cmd.as_deref() {
        Some(cmd) if role != Role::Operator && OPERATOR_COMMANDS.contains(&cmd) => {
            Failure::forbidden(cmd)
        }
        _ => Failure::new(e.code, e.message.clone()),
    };
    count(shared, failure)
}

/// Dispatches a parsed command run by `by` (the token's label) with `role`.
pub(crate) fn dispatch(
    shared: &SessionShared,
    role: Role,
    by: String,
    command: Command,
) -> Result<Dispatch, Failure> {
    if command.requires_operator() && role != Role::Operator {
        return Err(count(shared, Failure::forbidden(command.name())));
    }
    Ok(match command {
        Command::Metrics {} => {
            Dispatch::Reply(Reply::new(metrics_reply(&shared.metrics, &shared.pool)))
        }
        Command::Snapshot {} => Dispatch::Snapshot,
        command => {
            let sent = shared.sim_commands.send(RunCommand { command, by });
            let metrics = std::sync::Arc::clone(&shared.metrics);
            Dispatch::Pending(
                async move {
                    let failure = match sent.await {
                        Ok(Ok(reply)) => return Ok(reply),
                        Ok(Err(e)) => Failure::new(e.code, e.message),
                        Err(e) => Failure::unavailable(format!("simulation unavailable: {e}")),
                    };
                    metrics.error(failure.code.as_u16());
                    Err(failure)
                }
                .boxed_local(),
            )
        }
    })
}

/// Counts a failure in `errors` by its code.
pub(crate) fn count(shared: &SessionShared, failure: Failure) -> Failure {
    shared.metrics.error(failure.code.as_u16());
    failure
}
