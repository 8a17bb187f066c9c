//! A [`Batch`] as the bytes the sim node publishes, and back, so that a gateway
//! rebuilds a batch whose frames (`RangeFrame::encode`, for every topic set) are byte
//! for byte the sim node's.
//!
//! The encoding is JSON: `{"v":1,"seq":…,"timestamp":…,"items":[…],"about":[…],
//! "end":true}`. `end` says the sim node delivered after this batch (absent: true), so a
//! gateway cuts its frames where the sim node did.
//! `items` are the items exactly as the wire has them (`{type, data, timestamp}`, with
//! positions and needs already rounded, see `protocol::wire`): re-serializing what was
//! read gives the same bytes, since rounding a rounded value changes nothing. `about`
//! is the topic information the wire leaves out: for each event notification that
//! concerns characters, `[item index, [character ids]]`, so `character:<id>` topics
//! match on a gateway as on the sim node. Floats go through serde_json's
//! `float_roundtrip`, so every timestamp comes back bit for bit.
//!
//! What is not kept: the full precision of positions and needs, which no client sees.
//! So a decoded batch equals the sim node's as the wire sees it, and equals exactly
//! the decoding of its own encoding.

use crate::broker::batcher::Batch;
use crate::protocol::{CharacterId, Item, ItemData};
use serde::{Deserialize, Serialize};

/// The version of this encoding; another one is refused, not misread.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encoding batch {seq}: {source}")]
    Encode { seq: u64, source: serde_json::Error },
    #[error("decoding a batch: {0}")]
    Decode(#[source] serde_json::Error),
    #[error("batch encoding version {found}, this build reads {VERSION}")]
    Version { found: u32 },
    #[error("batch {seq}: topic information for item {index}, which is not an event")]
    About { seq: u64, index: usize },
}

#[derive(Serialize)]
struct Encoded<'a> {
    v: u32,
    seq: u64,
    timestamp: f64,
    items: &'a [Item],
    about: Vec<(usize, &'a [CharacterId])>,
    end: bool,
}

#[derive(Deserialize)]
struct Decoded {
    v: u32,
    seq: u64,
    timestamp: f64,
    items: Vec<Item>,
    about: Vec<(usize, Vec<CharacterId>)>,
    #[serde(default = "end_default")]
    end: bool,
}

fn end_default() -> bool {
    true
}

/// The characters each event notification of `items` concerns, by item index.
fn about(items: &[Item]) -> Vec<(usize, &[CharacterId])> {
    let events = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match &item.data {
            ItemData::EventNotification(e) if !e.characters.is_empty() => {
                Some((i, e.characters.as_slice()))
            }
            _ => None,
        });
    events.collect()
}

pub fn encode(batch: &Batch) -> Result<Vec<u8>, CodecError> {
    encode_flow(batch, true)
}

/// `batch`, and whether the sim node delivered after it.
pub fn encode_flow(batch: &Batch, end_of_delivery: bool) -> Result<Vec<u8>, CodecError> {
    let encoded = Encoded {
        end: end_of_delivery,
        v: VERSION,
        seq: batch.seq,
        timestamp: batch.timestamp,
        items: &batch.items,
        about: about(&batch.items),
    };
    serde_json::to_vec(&encoded).map_err(|source| CodecError::Encode {
        seq: batch.seq,
        source,
    })
}

pub fn decode(bytes: &[u8]) -> Result<Batch, CodecError> {
    decode_flow(bytes).map(|(batch, _)| batch)
}

/// The batch, and whether the sim node delivered after it.
pub fn decode_flow(bytes: &[u8]) -> Result<(Batch, bool), CodecError> {
    // The version first, so a newer encoding is named as such, not as a parse error.
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let Version { v } = serde_json::from_slice(bytes).map_err(CodecError::Decode)?;
    if v != VERSION {
        return Err(CodecError::Version { found: v });
    }
    let decoded: Decoded = serde_json::from_slice(bytes).map_err(CodecError::Decode)?;
    debug_assert_eq!(decoded.v, VERSION);
    let mut items = decoded.items;
    for (index, characters) in decoded.about {
        match items.get_mut(index).map(|item| &mut item.data) {
            Some(ItemData::EventNotification(e)) => e.characters = characters,
            _ => {
                return Err(CodecError::About {
                    seq: decoded.seq,
                    index,
                })
            }
        }
    }
    let batch = Batch {
        seq: decoded.seq,
        items,
        timestamp: decoded.timestamp,
    };
    Ok((batch, decoded.end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::batcher::RangeFrame;
    use crate::protocol::{
        CharState, CharacterUpdate, EventNotification, ItemKind, Needs, StateChange, Topic,
    };
    use crate::topics::TopicSet;
    use serde_json::json;
    use std::sync::Arc;

    fn state_change() -> Item {
        let data = ItemData::StateChange(StateChange {
            character_id: 7,
            name: "Ada \"the\" Lovelace ✓".into(),
            old_state: CharState::Idle,
            new_state: CharState::Traveling,
            location: "market".into(),
            tick: 12,
        });
        Item::new(data, 1_700_000_000.123_456_7)
    }

    fn event(characters: Vec<CharacterId>, event_id: Option<u64>) -> Item {
        let data = ItemData::EventNotification(EventNotification {
            event_type: "festival".into(),
            tick: 13,
            data: json!({"z": 1, "a": [1.5, -2, null, "x"], "m": {"k": 0.1}}),
            event_id,
            characters,
        });
        Item::new(data, 0.1 + 0.2)
    }

    fn character_update() -> Item {
        let data = ItemData::CharacterUpdate(CharacterUpdate {
            character_id: 3,
            state: CharState::Working,
            location: "forge".into(),
            position: [508.616_804_882, 326.849_999],
            needs: Needs {
                energy: 49.686,
                hunger: 0.4,
                social: 99.5,
            },
            tick: 14,
        });
        Item::new(data, 1e-7)
    }

    fn every_kind() -> Vec<Item> {
        vec![
            state_change(),
            event(vec![3, 7], Some(99)),
            event(Vec::new(), None),
            character_update(),
        ]
    }

    #[test]
    fn every_item_kind_reserializes_byte_for_byte() {
        for item in every_kind() {
            let first = serde_json::to_string(&item).expect("serialize");
            let read: Item = serde_json::from_str(&first).expect("deserialize");
            assert_eq!(read.kind(), item.kind());
            let second = serde_json::to_string(&read).expect("serialize again");
            assert_eq!(first, second, "{:?}", item.kind());
        }
    }

    fn topic_sets() -> Vec<TopicSet> {
        let mut sets = vec![TopicSet::everything(), TopicSet::default_topics()];
        let topics = [
            Topic::Kind(ItemKind::CharacterUpdate),
            Topic::Character(7),
            Topic::Character(3),
        ];
        for topic in topics {
            let mut set = TopicSet::default();
            set.add(&[topic]).expect("add");
            sets.push(set);
        }
        sets
    }

    #[test]
    fn a_decoded_batch_makes_the_sim_nodes_frames_for_every_topic_set() {
        let batch = Batch {
            seq: 41,
            items: every_kind(),
            timestamp: 1_700_000_000.987_654_3,
        };
        let decoded = decode(&encode(&batch).expect("encode")).expect("decode");
        assert_eq!(
            (decoded.seq, decoded.timestamp),
            (batch.seq, batch.timestamp)
        );
        let (sim, gateway) = (vec![Arc::new(batch)], vec![Arc::new(decoded)]);
        for topics in topic_sets() {
            let a = RangeFrame::encode(&sim, 40, &topics).map(|f| f.frame);
            let b = RangeFrame::encode(&gateway, 40, &topics).map(|f| f.frame);
            assert_eq!(a, b, "{:?}", topics.to_strings());
        }
    }

    #[test]
    fn decoding_is_exact_on_what_it_encoded() {
        let batch = Batch {
            seq: 5,
            items: every_kind(),
            timestamp: 2.5,
        };
        let once = decode(&encode(&batch).expect("encode")).expect("decode");
        let bytes = encode(&once).expect("encode again");
        assert_eq!(decode(&bytes).expect("decode again"), once);
        assert_eq!(encode(&decode(&bytes).expect("decode")).expect("e"), bytes);
        let ItemData::EventNotification(e) = &once.items[1].data else {
            panic!("an event");
        };
        assert_eq!(
            (e.characters.as_slice(), e.event_id),
            (&[3, 7][..], Some(99))
        );
    }

    proptest::proptest! {
        /// Rounded values and timestamps come back to the same bytes whatever they are.
        #[test]
        fn character_updates_reserialize_byte_for_byte(
            x in 0.0f64..1000.0, y in 0.0f64..1000.0,
            energy in 0.0f64..100.0, hunger in 0.0f64..100.0, social in 0.0f64..100.0,
            timestamp in proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
        ) {
            let mut item = character_update();
            item.timestamp = timestamp;
            if let ItemData::CharacterUpdate(u) = &mut item.data {
                u.position = [x, y];
                u.needs = Needs { energy, hunger, social };
            }
            let batch = Batch { seq: 1, items: vec![item], timestamp };
            let bytes = encode(&batch).expect("encode");
            let decoded = decode(&bytes).expect("decode");
            proptest::prop_assert_eq!(decoded.timestamp.to_bits(), timestamp.to_bits());
            proptest::prop_assert_eq!(encode(&decoded).expect("encode again"), bytes);
        }
    }

    #[test]
    fn an_empty_batch_round_trips() {
        let batch = Batch {
            seq: 1,
            items: Vec::new(),
            timestamp: 0.0,
        };
        assert_eq!(
            decode(&encode(&batch).expect("encode")).expect("decode"),
            batch
        );
    }

    #[test]
    fn other_versions_and_bad_topic_information_are_refused() {
        let other = br#"{"v":2,"seq":1,"timestamp":0.0,"items":[],"about":[]}"#;
        assert!(matches!(
            decode(other),
            Err(CodecError::Version { found: 2 })
        ));
        let bad = encode(&Batch {
            seq: 9,
            items: vec![state_change()],
            timestamp: 0.0,
        })
        .expect("encode");
        let bad = String::from_utf8(bad)
            .expect("utf-8")
            .replace(r#""about":[]"#, r#""about":[[0,[1]]]"#);
        assert!(matches!(
            decode(bad.as_bytes()),
            Err(CodecError::About { seq: 9, index: 0 })
        ));
        assert!(matches!(decode(b"not json"), Err(CodecError::Decode(_))));
    }
}
