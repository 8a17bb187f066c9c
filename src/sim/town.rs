//! The town: a fixed set of places on a 1000 × 1000 plane.
//!
//! The town is generated once per world from the world's RNG, so the same seed gives
//! the same map. Characters refer to places by [`PlaceIdx`] (an index into the town's
//! place list) rather than by string id: the tick loop compares and copies places for
//! every character on every tick, and an index is free to copy where a `String` is not.
//! String ids (`home_0`, `work_2`, `market`, `tavern`, `park`) appear only at the edge,
//! in wire items and views.

use crate::protocol::{LocationKind, LocationView};
use rand::Rng;
use std::collections::BTreeMap;

/// Index of a place in [`Town`]; stable for the life of a world (places never move or
/// disappear).
pub type PlaceIdx = usize;

/// Side of the square plane the town sits on.
pub const TOWN_SIZE: f64 = 1000.0;
/// Margin kept free at the edges so places are not drawn on the border of a map view.
const MARGIN: f64 = 50.0;

/// Names for workplaces, used in order; after the list runs out a number is appended
/// ("Bakery 2") so every name stays unique and readable.
const WORKPLACE_NAMES: [&str; 12] = [
    "Bakery", "Smithy", "Mill", "Tannery", "Workshop", "Brewery", "Library", "Clinic", "Docks",
    "Farm", "Tailor", "Pottery",
];

/// One place of the town.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Place {
    pub id: String,
    pub name: String,
    pub kind: LocationKind,
    pub position: [f64; 2],
}

/// The whole town. Places are stored in generation order: homes, workplaces, market,
/// tavern, park; that order is also the order of [`Town::locations`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Town {
    places: Vec<Place>,
    by_id: BTreeMap<String, PlaceIdx>,
    homes: Vec<PlaceIdx>,
    workplaces: Vec<PlaceIdx>,
    market: PlaceIdx,
    tavern: PlaceIdx,
    park: PlaceIdx,
}

/// Number of homes for a population: about one per four characters, at least one.
pub fn home_count(characters: usize) -> usize {
    characters.div_ceil(4).max(1)
}

/// Number of workplaces for a population: `max(3, n / 25)`.
pub fn workplace_count(characters: usize) -> usize {
    (characters / 25).max(3)
}

fn workplace_name(i: usize) -> String {
    let base = WORKPLACE_NAMES[i % WORKPLACE_NAMES.len()];
    match i / WORKPLACE_NAMES.len() {
        0 => base.to_owned(),
        round => format!("{base} {}", round + 1),
    }
}

fn random_position<R: Rng>(rng: &mut R, lo: f64, hi: f64) -> [f64; 2] {
    [rng.gen_range(lo..hi), rng.gen_range(lo..hi)]
}

impl Town {
    /// Generates a town sized for `characters` characters. Draws from `rng` in a fixed
    /// order (homes, workplaces, market, tavern, park) so the map depends only on the
    /// RNG state.
    pub fn generate<R: Rng>(rng: &mut R, characters: usize) -> Town {
        let homes_n = home_count(characters);
        let work_n = workplace_count(characters);
        let mut town = Town {
            places: Vec::with_capacity(homes_n + work_n + 3),
            by_id: BTreeMap::new(),
            homes: Vec::with_capacity(homes_n),
            workplaces: Vec::with_capacity(work_n),
            market: 0,
            tavern: 0,
            park: 0,
        };
        let (lo, hi) = (MARGIN, TOWN_SIZE - MARGIN);
        for i in 0..homes_n {
            let idx = town.push(
                format!("home_{i}"),
                format!("Home {i}"),
                LocationKind::Home,
                random_position(rng, lo, hi),
            );
            town.homes.push(idx);
        }
        for i in 0..work_n {
            let idx = town.push(
                format!("work_{i}"),
                workplace_name(i),
                LocationKind::Workplace,
                random_position(rng, lo, hi),
            );
            town.workplaces.push(idx);
        }
        // Public places sit in the middle half of the map, where a town square would be.
        let (clo, chi) = (TOWN_SIZE * 0.25, TOWN_SIZE * 0.75);
        town.market = town.push(
            "market".into(),
            "Market".into(),
            LocationKind::Market,
            random_position(rng, clo, chi),
        );
        town.tavern = town.push(
            "tavern".into(),
            "The Tavern".into(),
            LocationKind::Tavern,
            random_position(rng, clo, chi),
        );
        town.park = town.push(
            "park".into(),
            "Park".into(),
            LocationKind::Park,
            random_position(rng, clo, chi),
        );
        town
    }

    fn push(
        &mut self,
        id: String,
        name: String,
        kind: LocationKind,
        position: [f64; 2],
    ) -> PlaceIdx {
        let idx = self.places.len();
        self.by_id.insert(id.clone(), idx);
        self.places.push(Place {
            id,
            name,
            kind,
            position,
        });
        idx
    }

    /// Every place as the wire shows it, in place-index order.
    pub fn locations(&self) -> Vec<LocationView> {
        self.places
            .iter()
            .map(|p| LocationView {
                id: p.id.clone(),
                name: p.name.clone(),
                kind: p.kind,
                position: p.position,
            })
            .collect()
    }

    /// Looks a place up by its string id.
    pub fn lookup(&self, id: &str) -> Option<PlaceIdx> {
        self.by_id.get(id).copied()
    }

    /// The place at `idx`. Panics on an index that did not come from this town, which
    /// would be a bug: indices are only ever produced by the town itself.
    pub fn place(&self, idx: PlaceIdx) -> &Place {
        &self.places[idx]
    }

    /// String id of a place.
    pub fn id_of(&self, idx: PlaceIdx) -> &str {
        &self.places[idx].id
    }

    /// Position of a place.
    pub fn position(&self, idx: PlaceIdx) -> [f64; 2] {
        self.places[idx].position
    }

    /// Number of places.
    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// Always false: a town has at least one home, three workplaces and the three
    /// public places. Present because clippy expects it next to `len`.
    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// Every place of a kind, in index order.
    pub fn of_kind(&self, kind: LocationKind) -> &[PlaceIdx] {
        match kind {
            LocationKind::Home => &self.homes,
            LocationKind::Workplace => &self.workplaces,
            LocationKind::Market => std::slice::from_ref(&self.market),
            LocationKind::Tavern => std::slice::from_ref(&self.tavern),
            LocationKind::Park => std::slice::from_ref(&self.park),
        }
    }

    /// A random place of a kind, drawn from `rng` (one draw, even for single places, so
    /// the RNG stream does not depend on how many places of a kind exist).
    pub fn pick<R: Rng>(&self, kind: LocationKind, rng: &mut R) -> PlaceIdx {
        let all = self.of_kind(kind);
        all[rng.gen_range(0..all.len())]
    }

    /// The `n`-th home, wrapping around; spreads characters over homes evenly.
    pub fn home_for(&self, n: u64) -> PlaceIdx {
        self.homes[(n % self.homes.len() as u64) as usize]
    }

    pub fn market(&self) -> PlaceIdx {
        self.market
    }

    pub fn tavern(&self) -> PlaceIdx {
        self.tavern
    }

    pub fn park(&self) -> PlaceIdx {
        self.park
    }

    /// The place nearest to `pos` (lowest index on ties). Linear in the number of
    /// places; only used by rare operator commands, never in the tick loop.
    pub fn nearest(&self, pos: [f64; 2]) -> PlaceIdx {
        let mut best = 0;
        let mut best_d = f64::INFINITY;
        for (i, p) in self.places.iter().enumerate() {
            let d = distance_sq(pos, p.position);
            if d < best_d {
                best = i;
                best_d = d;
            }
        }
        best
    }
}

/// Squared distance; enough to compare distances without a square root.
pub fn distance_sq(a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    dx * dx + dy * dy
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn town(n: usize, seed: u64) -> Town {
        Town::generate(&mut ChaCha8Rng::seed_from_u64(seed), n)
    }

    #[test]
    fn sizes_follow_the_population() {
        assert_eq!(home_count(0), 1);
        assert_eq!(home_count(1), 1);
        assert_eq!(home_count(9), 3);
        assert_eq!(workplace_count(10), 3);
        assert_eq!(workplace_count(200), 8);
        let t = town(200, 1);
        assert_eq!(t.of_kind(LocationKind::Home).len(), 50);
        assert_eq!(t.of_kind(LocationKind::Workplace).len(), 8);
        assert_eq!(t.len(), 50 + 8 + 3);
        assert!(!t.is_empty());
    }

    #[test]
    fn ids_names_and_lookup() {
        let t = town(20, 1);
        let locs = t.locations();
        assert_eq!(locs[0].id, "home_0");
        assert_eq!(locs[0].name, "Home 0");
        let w2 = t.lookup("work_2").expect("work_2 exists");
        assert_eq!(t.place(w2).name, "Mill");
        assert_eq!(t.id_of(t.market()), "market");
        assert_eq!(t.place(t.tavern()).name, "The Tavern");
        assert_eq!(t.place(t.park()).kind, LocationKind::Park);
        assert_eq!(t.lookup("nowhere"), None);
        assert_eq!(workplace_name(12), "Bakery 2");
    }

    #[test]
    fn positions_are_deterministic_and_on_the_plane() {
        let a = town(100, 7).locations();
        assert_eq!(a, town(100, 7).locations());
        assert_ne!(a, town(100, 8).locations());
        for l in &a {
            for c in l.position {
                assert!((0.0..=TOWN_SIZE).contains(&c));
            }
        }
    }

    #[test]
    fn nearest_and_pick() {
        let t = town(40, 3);
        let park = t.park();
        assert_eq!(t.nearest(t.position(park)), park);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..20 {
            let h = t.pick(LocationKind::Home, &mut rng);
            assert_eq!(t.place(h).kind, LocationKind::Home);
        }
        assert_eq!(t.pick(LocationKind::Market, &mut rng), t.market());
        assert_eq!(
            t.home_for(0),
            t.home_for(t.of_kind(LocationKind::Home).len() as u64)
        );
    }
}
