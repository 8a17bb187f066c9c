//! Fragmented client messages (RFC 6455 §5.4), without sockets.
//!
//! Inbound: actix-http's decoder hands fragments over one by one (first, continue,
//! last) and leaves aggregation to us. [`Reassembler`] joins the fragments of a text
//! message under the same size cap a single frame has (`server.max_message_bytes`), so
//! a fragmented message costs the server no more memory than an unfragmented one, and
//! checks UTF-8 once the message is whole (a fragment may end inside a character).
//! Binary messages are refused by the protocol anyway: their fragments are counted,
//! never kept.

/// Why a fragmented message was refused; each maps to one close code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReassemblyError {
    /// The message would exceed the size cap (close 1009).
    #[error("fragmented message exceeds {max} bytes")]
    TooBig { max: usize },
    /// The whole text message is not valid UTF-8 (close 1007).
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A continuation frame arrived with no message started (close 1002).
    #[error("continuation frame without a message started")]
    NotStarted,
    /// A new text or binary message started before the previous one ended (close 1002).
    #[error("new message started inside a fragmented message")]
    AlreadyStarted,
}

/// One fragment as the decoder reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment<'a> {
    FirstText(&'a [u8]),
    FirstBinary(&'a [u8]),
    Continue(&'a [u8]),
    Last(&'a [u8]),
}

/// What a fragment completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Assembled {
    /// The message is not finished yet.
    Pending,
    /// A whole text message.
    Text(String),
    /// A whole binary message (its bytes were not kept).
    Binary,
}

/// The message being reassembled.
#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    Text(Vec<u8>),
    /// Binary: nothing is kept.
    Binary,
}

/// See the module documentation. After an error the reassembler is idle again, but the
/// caller is expected to close the connection.
#[derive(Debug)]
pub(crate) struct Reassembler {
    max: usize,
    state: State,
}

impl Reassembler {
    /// `max`: the largest whole text message, in bytes.
    pub(crate) fn new(max: usize) -> Self {
        Reassembler {
            max,
            state: State::Idle,
        }
    }

    /// Whether a fragmented message is in progress.
    #[cfg(test)]
    pub(crate) fn in_progress(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Takes the next fragment.
    pub(crate) fn push(&mut self, fragment: Fragment<'_>) -> Result<Assembled, ReassemblyError> {
        let result = self.step(fragment);
        if result.is_err() {
            self.state = State::Idle;
        }
        result
    }

    fn step(&mut self, fragment: Fragment<'_>) -> Result<Assembled, ReassemblyError> {
        match fragment {
            Fragment::FirstText(data) => {
                self.ensure_idle()?;
                self.state = State::Text(Vec::new());
                self.append(data)?;
                Ok(Assembled::Pending)
            }
            Fragment::FirstBinary(_) => {
                self.ensure_idle()?;
                self.state = State::Binary;
                Ok(Assembled::Pending)
            }
            Fragment::Continue(data) => {
                self.append(data)?;
                Ok(Assembled::Pending)
            }
            Fragment::Last(data) => {
                self.append(data)?;
                self.finish()
            }
        }
    }

    fn ensure_idle(&self) -> Result<(), ReassemblyError> {
        match self.state {
            State::Idle => Ok(()),
            _ => Err(ReassemblyError::AlreadyStarted),
        }
    }

    /// Adds a fragment's bytes to the message in progress, within the cap.
    fn append(&mut self, data: &[u8]) -> Result<(), ReassemblyError> {
        match &mut self.state {
            State::Idle => Err(ReassemblyError::NotStarted),
            State::Binary => Ok(()),
            State::Text(buf) => {
                if buf.len() + data.len() > self.max {
                    return Err(ReassemblyError::TooBig { max: self.max });
                }
                buf.extend_from_slice(data);
                Ok(())
            }
        }
    }

    fn finish(&mut self) -> Result<Assembled, ReassemblyError> {
        match std::mem::take(&mut self.state) {
            State::Idle => Err(ReassemblyError::NotStarted),
            State::Binary => Ok(Assembled::Binary),
            State::Text(buf) => String::from_utf8(buf)
                .map(Assembled::Text)
                .map_err(|_| ReassemblyError::InvalidUtf8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_of_a_text_message_join_into_one() {
        let mut r = Reassembler::new(100);
        assert_eq!(
            r.push(Fragment::FirstText(b"{\"type\":")),
            Ok(Assembled::Pending)
        );
        assert!(r.in_progress());
        assert_eq!(
            r.push(Fragment::Continue(b"\"heart")),
            Ok(Assembled::Pending)
        );
        assert_eq!(r.push(Fragment::Continue(b"")), Ok(Assembled::Pending));
        assert_eq!(
            r.push(Fragment::Last(b"beat\"}")),
            Ok(Assembled::Text("{\"type\":\"heartbeat\"}".into()))
        );
        assert!(!r.in_progress());
    }

    #[test]
    fn a_character_split_across_fragments_is_valid() {
        let text = "héllo €".as_bytes();
        let mut r = Reassembler::new(100);
        r.push(Fragment::FirstText(&text[..2])).expect("first");
        r.push(Fragment::Continue(&text[2..8])).expect("middle");
        assert_eq!(
            r.push(Fragment::Last(&text[8..])),
            Ok(Assembled::Text("héllo €".into()))
        );
    }

    #[test]
    fn the_cap_is_on_the_whole_message() {
        let mut r = Reassembler::new(10);
        r.push(Fragment::FirstText(b"12345")).expect("first");
        r.push(Fragment::Continue(b"67890"))
            .expect("exactly the cap");
        assert_eq!(
            r.push(Fragment::Last(b"1")),
            Err(ReassemblyError::TooBig { max: 10 })
        );
        assert!(!r.in_progress(), "idle after an error");
        let mut r = Reassembler::new(10);
        assert_eq!(
            r.push(Fragment::FirstText(b"12345678901")),
            Err(ReassemblyError::TooBig { max: 10 })
        );
    }

    #[test]
    fn invalid_utf8_is_found_when_the_message_is_whole() {
        let mut r = Reassembler::new(100);
        r.push(Fragment::FirstText(b"ok ")).expect("first");
        assert_eq!(
            r.push(Fragment::Last(&[0xC3, 0x28])),
            Err(ReassemblyError::InvalidUtf8)
        );
        let mut r = Reassembler::new(100);
        r.push(Fragment::FirstText(&[0xE2, 0x82])).expect("first");
        assert_eq!(
            r.push(Fragment::Last(b"")),
            Err(ReassemblyError::InvalidUtf8),
            "truncated character"
        );
    }

    #[test]
    fn binary_fragments_are_counted_not_kept() {
        let mut r = Reassembler::new(4);
        r.push(Fragment::FirstBinary(b"larger than the cap"))
            .expect("not kept, not capped");
        r.push(Fragment::Continue(b"more")).expect("continue");
        assert_eq!(r.push(Fragment::Last(b"end")), Ok(Assembled::Binary));
    }

    #[test]
    fn out_of_order_fragments_are_protocol_errors() {
        let mut r = Reassembler::new(100);
        assert_eq!(
            r.push(Fragment::Continue(b"x")),
            Err(ReassemblyError::NotStarted)
        );
        assert_eq!(
            r.push(Fragment::Last(b"x")),
            Err(ReassemblyError::NotStarted)
        );
        r.push(Fragment::FirstText(b"a")).expect("first");
        assert_eq!(
            r.push(Fragment::FirstBinary(b"b")),
            Err(ReassemblyError::AlreadyStarted)
        );
        r.push(Fragment::FirstBinary(b"a"))
            .expect("idle again after the error");
        assert_eq!(
            r.push(Fragment::FirstText(b"b")),
            Err(ReassemblyError::AlreadyStarted)
        );
    }
}
