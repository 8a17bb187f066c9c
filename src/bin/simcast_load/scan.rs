//! Reading what the load generator needs from a `batch` frame without parsing it as a
//! whole: at 100 000+ frames/s a full `serde_json` parse would make the load generator,
//! not the server, the bottleneck (both share the machine).
//!
//! A batch is `{"type":"batch","seq":N,"data":[item...],"timestamp":T}` (see
//! `broker::batcher`): `seq` comes before `data`, and every item ends with its own
//! `"timestamp":` — the time the simulation made it — so the last `"timestamp":` in the
//! frame is the batch's own and every earlier one is an item's.

/// What one batch frame carries.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchInfo {
    pub seq: u64,
    /// Creation timestamps (Unix seconds) of the items, in order.
    pub item_timestamps: Vec<f64>,
}

const BATCH_PREFIX: &str = r#"{"type":"batch""#;
const SEQ_KEY: &str = r#""seq":"#;
const TS_KEY: &str = r#""timestamp":"#;

/// `Some` for a `batch` frame, `None` for anything else.
pub fn batch(text: &str, out: &mut BatchInfo) -> Option<()> {
    if !text.starts_with(BATCH_PREFIX) {
        return None;
    }
    let after = &text[BATCH_PREFIX.len()..];
    let at = after.find(SEQ_KEY)? + SEQ_KEY.len();
    out.seq = leading_number(&after[at..])?.parse().ok()?;
    out.item_timestamps.clear();
    for (at, _) in after.match_indices(TS_KEY) {
        if let Some(ts) = leading_number(&after[at + TS_KEY.len()..]).and_then(|n| n.parse().ok()) {
            out.item_timestamps.push(ts);
        }
    }
    // The last one is the batch's own timestamp.
    out.item_timestamps.pop()?;
    Some(())
}

/// The JSON number at the start of `s`.
fn leading_number(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// The `type` of a server object, cheaply (`welcome`, `snapshot`, `batch`, ...).
pub fn kind(text: &str) -> Option<&str> {
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
        assert_eq!(b.seq, 42);
        assert_eq!(b.item_timestamps, vec![1700000000.25, 1700000000.5]);
        assert_eq!(kind(t), Some("batch"));
    }

    #[test]
    fn empty_batch_and_other_objects() {
        let mut b = BatchInfo::default();
        assert!(batch(
            r#"{"type":"batch","seq":7,"data":[],"timestamp":1.0}"#,
            &mut b
        )
        .is_some());
        assert_eq!((b.seq, b.item_timestamps.len()), (7, 0));
        assert!(batch(r#"{"type":"snapshot","data":{},"timestamp":1.0}"#, &mut b).is_none());
        assert_eq!(kind(r#"{"type":"welcome","data":{}}"#), Some("welcome"));
        assert_eq!(kind("pong"), None);
    }
}
