//! Caps what a single WebSocket frame can make the server buffer.
//!
//! actix-http's frame parser compares a frame's length with `max_size` only once the
//! whole announced frame has arrived; until then it keeps every byte the client sends
//! for it. A client announcing a 1 GiB frame and streaming its payload therefore grew
//! the server's memory by as much as it could send before `client_timeout` (measured:
//! +266 MiB peak RSS for 256 MiB pushed; `tests/hostile.rs`).
//!
//! [`FrameGuard`] sits between the bytes read from the socket and the WebSocket
//! decoder (`session::transport`). It follows
//! the frame boundaries (headers are tiny and fixed-format) and passes payload bytes
//! through untouched. When a header announces more than `max` bytes, it hands the
//! decoder that header rewritten to announce `max + 1` bytes followed by `max + 1`
//! filler bytes, and drops everything the client sends after it: the decoder then
//! refuses the frame through its usual path (`ProtocolError::Overflow`, close 1009)
//! having buffered at most `max + 1` bytes.

use actix_web::error::PayloadError;
use actix_web::web::{Bytes, BytesMut};
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Where the guard is in the client's frame stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Collecting a header (2 to 14 bytes); `have` bytes so far in `hdr`.
    Header { hdr: [u8; 14], have: usize },
    /// Passing `left` more payload bytes through.
    Payload { left: u64 },
    /// An oversized frame was cut off: everything from here on is dropped.
    Tripped,
}

/// See the module documentation.
pub(crate) struct FrameGuard<S> {
    inner: S,
    max: u64,
    state: State,
}

impl<S> FrameGuard<S> {
    pub(crate) fn new(inner: S, max: usize) -> Self {
        FrameGuard {
            inner,
            max: max as u64,
            state: State::Header {
                hdr: [0; 14],
                have: 0,
            },
        }
    }
}

/// Total header length once its first two bytes are known.
fn header_len(b0_b1: [u8; 2]) -> usize {
    let masked = b0_b1[1] & 0x80 != 0;
    let ext = match b0_b1[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if masked { 4 } else { 0 }
}

/// Payload length announced by a complete header.
fn payload_len(hdr: &[u8]) -> u64 {
    match hdr[1] & 0x7F {
        126 => u64::from(u16::from_be_bytes([hdr[2], hdr[3]])),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&hdr[2..10]);
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    }
}

/// The header of an oversized frame rewritten to announce `len` bytes (mask kept), and
/// `len` filler bytes after it.
fn cut_off(hdr: &[u8], len: u64) -> BytesMut {
    let masked = hdr[1] & 0x80 != 0;
    let mask_at = header_len([hdr[0], hdr[1]]) - if masked { 4 } else { 0 };
    let mut out = BytesMut::with_capacity(14 + len as usize);
    out.extend_from_slice(&[hdr[0]]);
    let mask_bit = hdr[1] & 0x80;
    if len <= 0xFFFF {
        out.extend_from_slice(&[mask_bit | 126]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[mask_bit | 127]);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if masked {
        out.extend_from_slice(&hdr[mask_at..mask_at + 4]);
    }
    out.resize(out.len() + len as usize, 0);
    out
}

impl<S> FrameGuard<S> {
    /// Runs one chunk through the state machine; returns what to hand the decoder.
    fn process(&mut self, chunk: Bytes) -> Bytes {
        // Fast path: the chunk is all payload of the current frame.
        if let State::Payload { left } = &mut self.state {
            if chunk.len() as u64 <= *left {
                *left -= chunk.len() as u64;
                if *left == 0 {
                    self.state = State::Header {
                        hdr: [0; 14],
                        have: 0,
                    };
                }
                return chunk;
            }
        }
        let mut out = BytesMut::with_capacity(chunk.len());
        let mut i = 0;
        while i < chunk.len() {
            match &mut self.state {
                State::Tripped => break,
                State::Payload { left } => {
                    let n = (*left).min((chunk.len() - i) as u64) as usize;
                    out.extend_from_slice(&chunk[i..i + n]);
                    i += n;
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Header {
                            hdr: [0; 14],
                            have: 0,
                        };
                    }
                }
                State::Header { hdr, have } => {
                    hdr[*have] = chunk[i];
                    *have += 1;
                    i += 1;
                    if *have < 2 || *have < header_len([hdr[0], hdr[1]]) {
                        continue;
                    }
                    let hdr = &hdr[..*have];
                    let len = payload_len(hdr);
                    if len > self.max {
                        out.extend_from_slice(&cut_off(hdr, self.max + 1));
                        self.state = State::Tripped;
                        break;
                    }
                    out.extend_from_slice(hdr);
                    self.state = if len == 0 {
                        State::Header {
                            hdr: [0; 14],
                            have: 0,
                        }
                    } else {
                        State::Payload { left: len }
                    };
                }
            }
        }
        out.freeze()
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Once tripped, drain and drop what the client still sends (so its socket does
        // not back up while the close goes out), a bounded number of chunks per poll.
        let mut drained = 0;
        loop {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if matches!(this.state, State::Tripped) {
                        drained += 1;
                        if drained >= 16 {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        continue;
                    }
                    let out = this.process(chunk);
                    if out.is_empty() {
                        continue; // only part of a header so far
                    }
                    return Poll::Ready(Some(Ok(out)));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn frame(b0: u8, len: u64, mask: bool) -> Vec<u8> {
        let m = if mask { 0x80 } else { 0 };
        let mut f = vec![b0];
        if len < 126 {
            f.push(m | len as u8);
        } else if len <= 0xFFFF {
            f.push(m | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(m | 127);
            f.extend_from_slice(&len.to_be_bytes());
        }
        if mask {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.resize(f.len() + len as usize, b'x');
        f
    }

    /// Feeds `input` in chunks of `size` bytes; returns everything passed through.
    fn run(input: &[u8], size: usize, max: usize) -> Vec<u8> {
        let chunks: Vec<Result<Bytes, PayloadError>> = input
            .chunks(size.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let guard = FrameGuard::new(futures_util::stream::iter(chunks), max);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let out: Vec<_> = rt.block_on(guard.collect::<Vec<_>>());
        out.into_iter()
            .flat_map(|c| c.expect("ok").to_vec())
            .collect()
    }

    #[test]
    fn frames_within_the_limit_pass_through_unchanged_whatever_the_chunking() {
        let mut input = Vec::new();
        for (len, mask) in [
            (0, true),
            (5, true),
            (125, false),
            (126, true),
            (1000, true),
        ] {
            input.extend(frame(0x81, len, mask));
        }
        input.extend(frame(0x82, 70_000, true));
        for size in [1, 2, 3, 7, 13, 100, 4096, input.len()] {
            assert_eq!(run(&input, size, 70_000), input, "chunks of {size}");
        }
    }

    #[test]
    fn an_oversized_frame_is_cut_to_max_plus_one_and_the_rest_dropped() {
        let mut input = frame(0x81, 10, true);
        let big = frame(0x81, 5_000, true);
        input.extend_from_slice(&big);
        input.extend(frame(0x81, 10, true)); // after the cut: dropped
        for size in [1, 3, 64, input.len()] {
            let out = run(&input, size, 1024);
            let first = frame(0x81, 10, true);
            assert_eq!(&out[..first.len()], &first[..]);
            let rest = &out[first.len()..];
            // 126-form header announcing 1025 bytes, the mask kept, 1025 filler bytes.
            assert_eq!(&rest[..4], &[0x81, 0x80 | 126, 0x04, 0x01]);
            assert_eq!(&rest[4..8], &[1, 2, 3, 4]);
            assert_eq!(rest.len(), 8 + 1025, "chunks of {size}");
        }
    }

    #[test]
    fn a_huge_announced_length_never_buffers_more_than_max() {
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]);
        header.extend(std::iter::repeat_n(b'a', 100_000));
        let out = run(&header, 4096, 65_536);
        // 127-form header (65 537 > 0xFFFF) + mask + 65 537 filler bytes.
        assert_eq!(out.len(), 2 + 8 + 4 + 65_537);
        assert_eq!(u64::from_be_bytes(out[2..10].try_into().unwrap()), 65_537);
    }
}
