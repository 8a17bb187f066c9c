//! Reading what the load generator needs from a frame without parsing it as a whole:
//! at 100 000+ frames/s a full `serde_json` parse would make the load generator, not
//! the server, the bottleneck (both share the machine).
//!
//! Two batch shapes are read:
//! - simcast's `{"type":"batch","from_seq":F,"seq":S,"data":[item...],"timestamp":T}`
//!   (`from_seq` from protocol 1.1 on; absent before). `from_seq` and `seq` come before
//!   `data`, and every item ends with its own `"timestamp":` (Unix seconds, when the
//!   simulation made it), so the last `"timestamp":` is the batch's own and every
//!   earlier one an item's.
//! - the lean baseline broadcaster's `{"type":"batch","ts":MS,"data":[event...]}`: no
//!   seq; the first `"ts":` is the batch's, each later one an event's (Unix ms).
//!
//! Both give the bytes of the `data` array, so the mean event size can be measured
//! the same way for both servers.
//!
//! The scan is per item, so its cost is the load generator's own ceiling: keys are found
//! with prebuilt `memchr::memmem` finders (SIMD; `str::find` builds a two-way searcher on
//! every call and took ~20 % of the load generator's CPU at 10 000 clients), and a
//! timestamp equal to the one before it (the items of one tick share theirs) is not
//! parsed again. Both servers' frames go through the same code.
use memchr::memmem::Finder;
use std::sync::LazyLock;

/// What one batch frame carries.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct BatchInfo {
    /// The 1.1 range start; `None` from a v1 server (and from the lean broadcaster).
    pub from_seq: Option<u64>,
    /// `None` from the lean broadcaster.
    pub seq: Option<u64>,
    /// Creation timestamps (Unix seconds) of the items, in order.
    pub item_timestamps: Vec<f64>,
    /// Bytes of the items, separators between them excluded.
    pub item_bytes: u64,
    /// simcast's own `timestamp` of the frame: when the broker flushed its (last) batch.
    /// `None` from the lean broadcaster, whose batch `ts` is its oldest event's.
    pub frame_timestamp: Option<f64>,
}

const BATCH_PREFIX: &str = r#"{"type":"batch""#;
const FROM_SEQ_KEY: &str = r#""from_seq":"#;
const SEQ_KEY: &str = r#","seq":"#;
const DATA_KEY: &str = r#""data":["#;

static TS_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(r#""timestamp":"#));
static LEAN_TS_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(r#""ts":"#));
static DATA: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(DATA_KEY));

/// A simcast `batch` frame: `Some` for a batch, `None` for anything else.
pub(crate) fn batch(text: &str, out: &mut BatchInfo) -> Option<()> {
    let after = text.strip_prefix(BATCH_PREFIX)?;
    let head = &after[..DATA.find(after.as_bytes())?];
    out.from_seq = number_after(head, FROM_SEQ_KEY);
    out.seq = Some(number_after(head, SEQ_KEY)?);
    out.item_timestamps.clear();
    collect_numbers(after, &TS_KEY, 1.0, &mut out.item_timestamps);
    // The last one is the batch's own timestamp.
    out.frame_timestamp = Some(out.item_timestamps.pop()?);
    out.item_bytes = data_bytes(after, out.item_timestamps.len());
    Some(())
}

/// A lean-broadcaster `batch` frame (or a single unbatched event, which counts as a
/// batch of one); `None` for anything else.
pub(crate) fn lean_batch(text: &str, out: &mut BatchInfo) -> Option<()> {
    out.from_seq = None;
    out.seq = None;
    out.frame_timestamp = None;
    out.item_timestamps.clear();
    if let Some(after) = text.strip_prefix(BATCH_PREFIX) {
        collect_numbers(after, &LEAN_TS_KEY, 1e-3, &mut out.item_timestamps);
        // The first one is the batch's (its oldest event's) time.
        if out.item_timestamps.is_empty() {
            return None;
        }
        out.item_timestamps.remove(0);
        out.item_bytes = data_bytes(after, out.item_timestamps.len());
    } else {
        collect_numbers(text, &LEAN_TS_KEY, 1e-3, &mut out.item_timestamps);
        out.item_timestamps.truncate(1);
        if out.item_timestamps.is_empty() {
            return None;
        }
        out.item_bytes = text.len() as u64;
    }
    Some(())
}

/// `data.seq` of a `snapshot` frame. `seq` follows `characters` and `locations` in
/// the object and neither has a `seq` member, so the last `"seq":` in the frame is it.
pub(crate) fn snapshot_seq(text: &str) -> Option<u64> {
    let at = text.rfind(r#""seq":"#)? + r#""seq":"#.len();
    leading_number(&text[at..])?.parse().ok()
}

/// The number right after the first `key` in `s`.
fn number_after<T: std::str::FromStr>(s: &str, key: &str) -> Option<T> {
    let at = s.find(key)? + key.len();
    leading_number(&s[at..])?.parse().ok()
}

/// Every number that follows `key` in `s`, times `scale`, appended to `out`. A number
/// spelled exactly like the one before it reuses that one's value.
fn collect_numbers(s: &str, key: &Finder<'_>, scale: f64, out: &mut Vec<f64>) {
    let mut last: Option<(&str, f64)> = None;
    for at in key.find_iter(s.as_bytes()) {
        let Some(n) = s.get(at + key.needle().len()..).and_then(leading_number) else {
            continue;
        };
        let v = match last {
            Some((prev, v)) if prev == n => v,
            _ => match n.parse::<f64>() {
                Ok(v) => v * scale,
                Err(_) => continue,
            },
        };
        last = Some((n, v));
        out.push(v);
    }
}

/// Bytes inside the `data` array, minus the commas between its `items` elements.
fn data_bytes(s: &str, items: usize) -> u64 {
    let (Some(start), Some(end)) = (DATA.find(s.as_bytes()), s.rfind(']')) else {
        return 0;
    };
    let inner = end.saturating_sub(start + DATA_KEY.len());
    inner.saturating_sub(items.saturating_sub(1)) as u64
}

/// The JSON number at the start of `s`.
fn leading_number(s: &str) -> Option<&str> {
    let end = s
        .bytes()
        .position(|c| !(c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E')))
        .unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// The `type` of a server object, cheaply (`welcome`, `snapshot`, `batch`, ...).
pub(crate) fn kind(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(r#"{"type":""#)?;
    rest.split('"').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_seq_and_item_timestamps() {
        let t = r#"{"type":"batch","seq":42,"data":[{"type":"state_change","data":{"tick":3},"timestamp":1700000000.25},{"type":"character_update","data":{"position":[1.5,2e3]},"timestamp":1700000000.5}],"timestamp":1700000001.0}"#;
        let mut b = BatchInfo::default();
        assert!(batch(t, &mut b).is_some());
        assert_eq!((b.from_seq, b.seq), (None, Some(42)));
        assert_eq!(b.item_timestamps, vec![1700000000.25, 1700000000.5]);
        assert_eq!(b.frame_timestamp, Some(1700000001.0));
        let first = r#"{"type":"state_change","data":{"tick":3},"timestamp":1700000000.25}"#;
        let second =
            r#"{"type":"character_update","data":{"position":[1.5,2e3]},"timestamp":1700000000.5}"#;
        assert_eq!(b.item_bytes as usize, first.len() + second.len());
        assert_eq!(kind(t), Some("batch"));
    }

    #[test]
    fn a_repeated_timestamp_is_read_once_and_a_new_one_again() {
        let t = r#"{"type":"batch","seq":9,"data":[{"timestamp":5.5},{"timestamp":5.5},{"timestamp":5.75},{"timestamp":5.5}],"timestamp":6.0}"#;
        let mut b = BatchInfo::default();
        assert!(batch(t, &mut b).is_some());
        assert_eq!(b.item_timestamps, vec![5.5, 5.5, 5.75, 5.5]);
    }

    #[test]
    fn reads_a_1_1_range() {
        let t = r#"{"type":"batch","from_seq":40,"seq":42,"data":[{"type":"x","data":{"seq":1},"timestamp":2.5}],"timestamp":3.0}"#;
        let mut b = BatchInfo::default();
        assert!(batch(t, &mut b).is_some());
        assert_eq!((b.from_seq, b.seq), (Some(40), Some(42)));
        assert_eq!(b.item_timestamps, vec![2.5]);
    }

    #[test]
    fn empty_batch_and_other_objects() {
        let mut b = BatchInfo::default();
        assert!(batch(
            r#"{"type":"batch","seq":7,"data":[],"timestamp":1.0}"#,
            &mut b
        )
        .is_some());
        assert_eq!(
            (b.seq, b.item_timestamps.len(), b.item_bytes),
            (Some(7), 0, 0)
        );
        assert!(batch(r#"{"type":"snapshot","data":{},"timestamp":1.0}"#, &mut b).is_none());
        assert_eq!(kind(r#"{"type":"welcome","data":{}}"#), Some("welcome"));
        assert_eq!(kind("pong"), None);
    }

    #[test]
    fn reads_lean_batches_and_events() {
        let t = r#"{"type":"batch","ts":1700000000000.000,"data":[{"type":"state_change","ts":1700000000000.000,"tick":0},{"type":"state_change","ts":1700000000500.000,"tick":1}]}"#;
        let mut b = BatchInfo::default();
        assert!(lean_batch(t, &mut b).is_some());
        assert_eq!(b.seq, None);
        assert_eq!(b.item_timestamps, vec![1700000000.0, 1700000000.5]);
        let ev = r#"{"type":"state_change","ts":1700000000000.000,"tick":0}"#;
        assert_eq!(b.item_bytes as usize, 2 * ev.len());
        assert!(lean_batch(ev, &mut b).is_some());
        assert_eq!(b.item_timestamps, vec![1700000000.0]);
        assert!(lean_batch("pong", &mut b).is_none());
    }

    #[test]
    fn snapshot_seq_is_the_last_seq() {
        let t = r#"{"type":"snapshot","data":{"tick":5,"characters":[{"id":1}],"locations":[],"seq":77,"resync":false},"timestamp":1.0}"#;
        assert_eq!(snapshot_seq(t), Some(77));
    }
}
