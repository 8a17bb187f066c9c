//! The character state machine as pure functions.
//!
//! Nothing here touches the world: every function takes the facts it needs and returns
//! a value, so each rule can be tested on its own and the world's tick loop stays a thin
//! driver. Randomness comes in as a `&mut impl Rng` handed down by the world, which keeps
//! the whole simulation reproducible from its seed.
//!
//! Time: one tick is one game minute, a day is [`TICKS_PER_DAY`] ticks, and tick 0 is
//! 06:00 so a fresh world starts in the morning with characters waking up.

use super::town::PlaceIdx;
use crate::protocol::{CharState, Needs};
use rand::Rng;

/// Ticks (game minutes) in a game day.
pub const TICKS_PER_DAY: u64 = 1440;
/// Minute of day at tick 0 (06:00).
pub const START_MINUTE: u64 = 6 * 60;
/// Night (go home and sleep) runs from 22:00 to 06:00.
pub const NIGHT_START: u32 = 22 * 60;
pub const NIGHT_END: u32 = 6 * 60;
/// Work shift, 09:00–17:00.
pub const SHIFT_START: u32 = 9 * 60;
pub const SHIFT_END: u32 = 17 * 60;
/// The market sells food 07:00–19:00; outside those hours hungry people use the tavern.
pub const MARKET_OPEN: u32 = 7 * 60;
pub const MARKET_CLOSE: u32 = 19 * 60;
/// From this minute on, lonely people look for company at the tavern instead of the park.
pub const EVENING_START: u32 = 17 * 60;

/// Distance covered per tick while traveling. The plane is 1000 units wide, so the
/// longest trip takes about a game hour.
pub const TRAVEL_SPEED: f64 = 25.0;

/// Below this energy a character drops everything and goes to bed.
pub const EXHAUSTED: f64 = 20.0;
/// A sleeper gets up (in daytime) once energy reaches this.
pub const RESTED: f64 = 80.0;
/// Below this hunger a character goes to eat.
pub const HUNGRY: f64 = 30.0;
/// Eating goes on until hunger reaches this.
pub const FED: f64 = 90.0;
/// Hunger so low that it wakes a sleeper.
pub const STARVING: f64 = 10.0;
/// Below this social a character looks for company.
pub const LONELY: f64 = 35.0;
/// Socializing goes on until social reaches this.
pub const SOCIAL_SATISFIED: f64 = 85.0;

/// Every state is held at least this many ticks before the rules may change it, so a
/// character does not flap between states on threshold noise, and an operator's
/// `set_state` is visible for a moment even when the rules disagree with it.
pub const MIN_DWELL_TICKS: u64 = 5;
/// An idle character only thinks about wandering off after this long.
pub const IDLE_BEFORE_WANDER: u64 = 30;
/// Per-tick chance that a settled idle character strolls to the park.
pub const WANDER_CHANCE: f64 = 0.01;
/// Per-tick chance that a settled idle character away from home walks home.
pub const GO_HOME_CHANCE: f64 = 0.02;
/// Per-tick chance that a rested sleeper gets up once it is day. Spreads waking over
/// the early morning instead of the whole town changing state on the 06:00 tick.
pub const WAKE_CHANCE: f64 = 0.05;
/// Per-tick chance that a worker leaves once the shift is over; at most
/// [`FINISH_UP_TICKS`] late. Spreads the 17:00 rush over a quarter of an hour or so.
pub const LEAVE_WORK_CHANCE: f64 = 0.15;
pub const FINISH_UP_TICKS: u32 = 60;
/// Chance that a hungry character eats at home rather than in town.
pub const EAT_AT_HOME_CHANCE: f64 = 0.2;

/// Minute of the day (0..1440) at `tick`.
pub fn minute_of_day(tick: u64) -> u32 {
    ((tick + START_MINUTE) % TICKS_PER_DAY) as u32
}

/// The clock clients show at `tick`: days counted from 1, as people do.
pub fn clock_at(tick: u64) -> crate::protocol::Clock {
    crate::protocol::Clock {
        day: day_of(tick) + 1,
        minute_of_day: minute_of_day(tick),
    }
}

/// Hour of the day as a fraction (6.5 = 06:30) at `tick`.
pub fn hour_of_day(tick: u64) -> f64 {
    f64::from(minute_of_day(tick)) / 60.0
}

/// Game day number at `tick` (day 0 starts at tick 0, 06:00); days roll over at
/// midnight so the calendar matches the clock.
pub fn day_of(tick: u64) -> u64 {
    (tick + START_MINUTE) / TICKS_PER_DAY
}

pub fn is_night(minute: u32) -> bool {
    !(NIGHT_END..NIGHT_START).contains(&minute)
}

pub fn is_work_hours(minute: u32) -> bool {
    (SHIFT_START..SHIFT_END).contains(&minute)
}

/// Minutes over which the town's routine is spread: a character sets out for work and
/// turns in for the night up to this much after the clock says so, by id. Without it,
/// 09:00 sent three quarters of the town on its way in one tick, and every client had to
/// take that tick's items at once (a 130 KB frame each at 1 000 characters: the p99 of
/// the whole broadcast). People do not all leave home on the same minute either.
pub const ROUTINE_SPREAD: u32 = 30;

/// How late character `id` runs its routine, in `0..ROUTINE_SPREAD` minutes: a fixed
/// scramble of the id (Knuth's multiplicative hash), so neighbours do not move together.
pub fn routine_offset(id: u64) -> u32 {
    (id.wrapping_mul(2_654_435_761) % u64::from(ROUTINE_SPREAD)) as u32
}

/// Whether it is past this character's bedtime: the night, less the first
/// `routine_offset` minutes of it.
fn bedtime(s: &Situation) -> bool {
    is_night(s.minute) && !(NIGHT_START..NIGHT_START + s.routine_offset).contains(&s.minute)
}

/// Whether this character's shift is on: from its own start (09:00 plus its
/// `routine_offset`) to the common 17:00.
fn on_shift(s: &Situation) -> bool {
    s.works_today && (SHIFT_START + s.routine_offset..SHIFT_END).contains(&s.minute)
}

/// Whether character `id` works on `day`: everyone has one day off in seven, spread by
/// id so the town never empties its workplaces all at once.
pub fn works_on(id: u64, day: u64) -> bool {
    !(day + id).is_multiple_of(7)
}

/// Per-tick change of (energy, hunger, social) in a state. Chosen so that a day has
/// about 16 waking hours (energy drops ~65 over a day of work), two or three meals
/// (hunger falls from "fed" to "hungry" in ~8 hours; a meal lasts ~40 ticks), and an
/// evening out when social runs low (~10 hours from satisfied to lonely).
pub fn need_rates(state: CharState) -> (f64, f64, f64) {
    match state {
        CharState::Idle => (-0.06, -0.12, -0.08),
        CharState::Sleeping => (0.2, -0.04, -0.02),
        CharState::Working => (-0.08, -0.12, -0.05),
        CharState::Eating => (-0.03, 1.5, -0.04),
        CharState::Traveling => (-0.07, -0.12, -0.08),
        CharState::Socializing => (-0.05, -0.12, 1.0),
    }
}

fn clamp_need(v: f64) -> f64 {
    v.clamp(0.0, 100.0)
}

/// Needs after one tick in `state`, each clamped to 0..=100.
pub fn update_needs(needs: Needs, state: CharState) -> Needs {
    let (e, h, s) = need_rates(state);
    Needs {
        energy: clamp_need(needs.energy + e),
        hunger: clamp_need(needs.hunger + h),
        social: clamp_need(needs.social + s),
    }
}

/// One tick of travel from `pos` toward `dest` at `speed`. Returns the new position and
/// whether the destination was reached (then the position is exactly `dest`, so
/// arrivals never leave a character a rounding error away from its place).
pub fn travel_step(pos: [f64; 2], dest: [f64; 2], speed: f64) -> ([f64; 2], bool) {
    let (dx, dy) = (dest[0] - pos[0], dest[1] - pos[1]);
    // sqrt is correctly rounded by IEEE 754, so this is the same on every machine.
    let dist = (dx * dx + dy * dy).sqrt();
    if dist <= speed {
        (dest, true)
    } else {
        let f = speed / dist;
        ([pos[0] + dx * f, pos[1] + dy * f], false)
    }
}

/// The places a character's rules may send it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Places {
    pub home: PlaceIdx,
    pub workplace: PlaceIdx,
    pub market: PlaceIdx,
    pub tavern: PlaceIdx,
    pub park: PlaceIdx,
}

/// What the rules know about a character when deciding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Situation {
    pub state: CharState,
    pub needs: Needs,
    pub ticks_in_state: u64,
    /// The place the character is at.
    pub at: PlaceIdx,
    /// Minute of day (0..1440).
    pub minute: u32,
    pub works_today: bool,
    /// See [`routine_offset`].
    pub routine_offset: u32,
}

/// What happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Keep the current state.
    Stay,
    /// Enter a state where the character is.
    Become(CharState),
    /// Start traveling to a place, then enter `then` on arrival.
    Travel { to: PlaceIdx, then: CharState },
}

/// Which rule produced a decision; the world uses it for notifications (`ShiftEnd`
/// emits `shift_ended`) and it makes test failures readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Traveling is driven by movement, not by rules.
    OnTheWay,
    /// Still within [`MIN_DWELL_TICKS`].
    Dwell,
    /// The current activity is not finished.
    Continue,
    Exhausted,
    Night,
    Hungry,
    Work,
    ShiftEnd,
    Lonely,
    Idle,
    Wander,
    GoHome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
}

impl Decision {
    fn new(action: Action, reason: Reason) -> Self {
        Decision { action, reason }
    }
}

/// Be in `state` at `dest`: stay if already so, change state in place if already at
/// `dest`, otherwise travel there.
pub fn go(s: &Situation, dest: PlaceIdx, state: CharState) -> Action {
    if s.at != dest {
        Action::Travel {
            to: dest,
            then: state,
        }
    } else if s.state == state {
        Action::Stay
    } else {
        Action::Become(state)
    }
}

/// Hold any state for [`MIN_DWELL_TICKS`] first.
pub fn dwell(s: &Situation) -> Option<Decision> {
    (s.ticks_in_state < MIN_DWELL_TICKS).then(|| Decision::new(Action::Stay, Reason::Dwell))
}

/// Keep sleeping through the night and until rested, unless starving.
pub fn keep_sleeping(s: &Situation) -> Option<Decision> {
    let tired = is_night(s.minute) || s.needs.energy < RESTED;
    (s.state == CharState::Sleeping && tired && s.needs.hunger >= STARVING)
        .then(|| Decision::new(Action::Stay, Reason::Continue))
}

/// A rested sleeper in daytime lingers in bed a little (unless hungry), waking with
/// [`WAKE_CHANCE`] per tick. Draws from `rng` only in that situation.
pub fn linger_in_bed<R: Rng>(s: &Situation, rng: &mut R) -> Option<Decision> {
    (s.state == CharState::Sleeping && s.needs.hunger >= HUNGRY && !rng.gen_bool(WAKE_CHANCE))
        .then(|| Decision::new(Action::Stay, Reason::Continue))
}

/// Keep eating until fed.
pub fn keep_eating(s: &Situation) -> Option<Decision> {
    (s.state == CharState::Eating && s.needs.hunger < FED)
        .then(|| Decision::new(Action::Stay, Reason::Continue))
}

/// Keep working through the shift unless exhausted or hungry (then the need rules
/// take over: a hungry worker takes a meal break and the work rule sends it back).
pub fn keep_working(s: &Situation) -> Option<Decision> {
    (s.state == CharState::Working
        && s.works_today
        && is_work_hours(s.minute)
        && s.needs.energy >= EXHAUSTED
        && s.needs.hunger >= HUNGRY)
        .then(|| Decision::new(Action::Stay, Reason::Continue))
}

/// Just after the shift a worker finishes up, leaving with [`LEAVE_WORK_CHANCE`] per
/// tick, for at most [`FINISH_UP_TICKS`]. Draws from `rng` only in that window.
pub fn finish_up<R: Rng>(s: &Situation, rng: &mut R) -> Option<Decision> {
    (s.state == CharState::Working
        && s.works_today
        && (SHIFT_END..SHIFT_END + FINISH_UP_TICKS).contains(&s.minute)
        && s.needs.energy >= EXHAUSTED
        && s.needs.hunger >= HUNGRY
        && !rng.gen_bool(LEAVE_WORK_CHANCE))
    .then(|| Decision::new(Action::Stay, Reason::Continue))
}

/// Leave work when the shift is over: tend to an urgent need if there is one,
/// otherwise go home. Always reported as [`Reason::ShiftEnd`].
pub fn leave_work<R: Rng>(s: &Situation, p: &Places, rng: &mut R) -> Option<Decision> {
    if s.state != CharState::Working || (s.works_today && is_work_hours(s.minute)) {
        return None;
    }
    let action = exhausted(s, p)
        .or_else(|| night(s, p))
        .or_else(|| hungry(s, p, rng))
        .map(|d| d.action)
        .unwrap_or_else(|| go(s, p.home, CharState::Idle));
    Some(Decision::new(action, Reason::ShiftEnd))
}

/// Keep socializing until satisfied, unless night falls or a stronger need arises.
pub fn keep_socializing(s: &Situation) -> Option<Decision> {
    (s.state == CharState::Socializing
        && s.needs.social < SOCIAL_SATISFIED
        && !is_night(s.minute)
        && s.needs.energy >= EXHAUSTED
        && s.needs.hunger >= HUNGRY)
        .then(|| Decision::new(Action::Stay, Reason::Continue))
}

/// Exhausted: go home and sleep, whatever the time.
pub fn exhausted(s: &Situation, p: &Places) -> Option<Decision> {
    (s.needs.energy < EXHAUSTED)
        .then(|| Decision::new(go(s, p.home, CharState::Sleeping), Reason::Exhausted))
}

/// Night: go home and sleep.
pub fn night(s: &Situation, p: &Places) -> Option<Decision> {
    bedtime(s).then(|| Decision::new(go(s, p.home, CharState::Sleeping), Reason::Night))
}

/// Where a hungry character eats: sometimes at home, otherwise the market while it is
/// open and the tavern after hours. Draws once from `rng`.
pub fn food_place<R: Rng>(minute: u32, p: &Places, rng: &mut R) -> PlaceIdx {
    if rng.gen_bool(EAT_AT_HOME_CHANCE) {
        p.home
    } else if (MARKET_OPEN..MARKET_CLOSE).contains(&minute) {
        p.market
    } else {
        p.tavern
    }
}

/// Hungry: go and eat.
pub fn hungry<R: Rng>(s: &Situation, p: &Places, rng: &mut R) -> Option<Decision> {
    (s.needs.hunger < HUNGRY).then(|| {
        let place = food_place(s.minute, p, rng);
        Decision::new(go(s, place, CharState::Eating), Reason::Hungry)
    })
}

/// Work hours on a working day: go to work.
pub fn work(s: &Situation, p: &Places) -> Option<Decision> {
    on_shift(s).then(|| Decision::new(go(s, p.workplace, CharState::Working), Reason::Work))
}

/// Lonely: find company, at the park by day and at the tavern in the evening.
pub fn lonely(s: &Situation, p: &Places) -> Option<Decision> {
    (s.needs.social < LONELY).then(|| {
        let place = if s.minute >= EVENING_START {
            p.tavern
        } else {
            p.park
        };
        Decision::new(go(s, place, CharState::Socializing), Reason::Lonely)
    })
}

/// Nothing pressing: be idle; once settled, now and then stroll to the park or walk
/// home. Draws from `rng` only when settled and idle, so the draw count per tick is a
/// function of the state alone.
pub fn idle<R: Rng>(s: &Situation, p: &Places, rng: &mut R) -> Decision {
    if s.state != CharState::Idle {
        return Decision::new(Action::Become(CharState::Idle), Reason::Idle);
    }
    if s.ticks_in_state >= IDLE_BEFORE_WANDER {
        let r: f64 = rng.gen();
        if r < WANDER_CHANCE && s.at != p.park {
            return Decision::new(go(s, p.park, CharState::Idle), Reason::Wander);
        }
        if r < WANDER_CHANCE + GO_HOME_CHANCE && s.at != p.home {
            return Decision::new(go(s, p.home, CharState::Idle), Reason::GoHome);
        }
    }
    Decision::new(Action::Stay, Reason::Idle)
}

/// The whole state machine for a character that is not traveling: the first rule that
/// applies wins. Activities in progress are continued first; then needs in order of
/// urgency (exhaustion, night, hunger), then duty (work), then company, then idling.
pub fn decide<R: Rng>(s: &Situation, p: &Places, rng: &mut R) -> Decision {
    if s.state == CharState::Traveling {
        return Decision::new(Action::Stay, Reason::OnTheWay);
    }
    dwell(s)
        .or_else(|| match s.state {
            CharState::Sleeping => keep_sleeping(s).or_else(|| linger_in_bed(s, rng)),
            CharState::Eating => keep_eating(s),
            CharState::Working => keep_working(s)
                .or_else(|| finish_up(s, rng))
                .or_else(|| leave_work(s, p, rng)),
            CharState::Socializing => keep_socializing(s),
            CharState::Idle | CharState::Traveling => None,
        })
        .or_else(|| exhausted(s, p))
        .or_else(|| night(s, p))
        .or_else(|| hungry(s, p, rng))
        .or_else(|| work(s, p))
        .or_else(|| lonely(s, p))
        .unwrap_or_else(|| idle(s, p, rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const HOME: PlaceIdx = 0;
    const WORK: PlaceIdx = 1;
    const MARKET: PlaceIdx = 2;
    const TAVERN: PlaceIdx = 3;
    const PARK: PlaceIdx = 4;
    const P: Places = Places {
        home: HOME,
        workplace: WORK,
        market: MARKET,
        tavern: TAVERN,
        park: PARK,
    };

    fn needs(energy: f64, hunger: f64, social: f64) -> Needs {
        Needs {
            energy,
            hunger,
            social,
        }
    }

    /// A content character idle at home at noon for a while, on a working day.
    fn sit() -> Situation {
        Situation {
            state: CharState::Idle,
            needs: needs(70.0, 70.0, 70.0),
            ticks_in_state: 10,
            at: HOME,
            minute: 12 * 60,
            works_today: false,
            routine_offset: 0,
        }
    }

    #[test]
    fn routine_is_spread_over_half_an_hour_by_id() {
        let offsets: Vec<u32> = (1..=1000).map(routine_offset).collect();
        assert!(offsets.iter().all(|&o| o < ROUTINE_SPREAD));
        // Every minute of the spread gets someone, and no minute a crowd.
        let mut per_minute = [0u32; ROUTINE_SPREAD as usize];
        for o in offsets {
            per_minute[o as usize] += 1;
        }
        assert!(
            per_minute.iter().all(|&n| (15..=60).contains(&n)),
            "{per_minute:?}"
        );

        let late = Situation {
            works_today: true,
            minute: SHIFT_START + 10,
            routine_offset: 20,
            ..sit()
        };
        assert!(work(&late, &P).is_none(), "not yet its start");
        let started = Situation {
            minute: SHIFT_START + 20,
            ..late
        };
        assert!(work(&started, &P).is_some());
        let owl = Situation {
            minute: NIGHT_START + 5,
            routine_offset: 6,
            ..sit()
        };
        assert!(night(&owl, &P).is_none(), "not yet its bedtime");
        assert!(night(
            &Situation {
                minute: NIGHT_START + 6,
                ..owl
            },
            &P
        )
        .is_some());
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(1)
    }

    fn travel(to: PlaceIdx, then: CharState) -> Action {
        Action::Travel { to, then }
    }

    #[test]
    fn clock() {
        assert_eq!(minute_of_day(0), 360);
        assert_eq!(hour_of_day(0), 6.0);
        assert_eq!(hour_of_day(90), 7.5);
        assert_eq!(minute_of_day(1080), 0);
        assert_eq!(minute_of_day(1440), 360);
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(1079), 0);
        assert_eq!(day_of(1080), 1);
        let at = |day, minute_of_day| crate::protocol::Clock { day, minute_of_day };
        assert_eq!(
            clock_at(0),
            at(1, 360),
            "the first day is day 1, from 06:00"
        );
        assert_eq!(clock_at(1079), at(1, 1439));
        assert_eq!(clock_at(1080), at(2, 0), "midnight rolls the day over");
        assert!(is_night(22 * 60) && is_night(0) && is_night(5 * 60 + 59));
        assert!(!is_night(6 * 60) && !is_night(21 * 60 + 59));
        assert!(is_work_hours(9 * 60) && !is_work_hours(17 * 60) && !is_work_hours(8 * 60));
        assert_eq!((0..7).filter(|d| works_on(3, *d)).count(), 6);
    }

    #[test]
    fn needs_move_by_state_and_clamp() {
        let n = needs(50.0, 50.0, 50.0);
        let awake = update_needs(n, CharState::Idle);
        assert!(awake.energy < 50.0 && awake.hunger < 50.0 && awake.social < 50.0);
        let working = update_needs(n, CharState::Working);
        assert!(working.energy < awake.energy);
        assert!(update_needs(n, CharState::Sleeping).energy > 50.0);
        assert!(update_needs(n, CharState::Eating).hunger > 50.0);
        assert!(update_needs(n, CharState::Socializing).social > 50.0);
        assert_eq!(
            update_needs(needs(99.9, 99.9, 99.9), CharState::Sleeping).energy,
            100.0
        );
        assert_eq!(
            update_needs(needs(99.9, 99.9, 99.9), CharState::Eating).hunger,
            100.0
        );
        let low = update_needs(needs(0.01, 0.01, 0.01), CharState::Working);
        assert_eq!((low.energy, low.hunger, low.social), (0.0, 0.0, 0.0));
    }

    #[test]
    fn travel_moves_at_speed_and_snaps_on_arrival() {
        let (p, arrived) = travel_step([0.0, 0.0], [100.0, 0.0], TRAVEL_SPEED);
        assert!(!arrived);
        assert_eq!(p, [25.0, 0.0]);
        let (p, arrived) = travel_step([0.0, 0.0], [30.0, 40.0], TRAVEL_SPEED);
        assert!(!arrived);
        assert!((p[0] - 15.0).abs() < 1e-9 && (p[1] - 20.0).abs() < 1e-9);
        let (p, arrived) = travel_step([90.0, 0.0], [100.0, 0.0], TRAVEL_SPEED);
        assert!(arrived);
        assert_eq!(p, [100.0, 0.0]);
        // A full trip arrives after ceil(distance / speed) steps.
        let mut pos = [0.0, 0.0];
        let mut steps = 0;
        loop {
            steps += 1;
            let (next, done) = travel_step(pos, [300.0, 400.0], TRAVEL_SPEED);
            pos = next;
            if done {
                break;
            }
        }
        assert_eq!(steps, 20);
        assert_eq!(pos, [300.0, 400.0]);
    }

    #[test]
    fn go_stays_becomes_or_travels() {
        let s = sit();
        assert_eq!(go(&s, HOME, CharState::Idle), Action::Stay);
        assert_eq!(
            go(&s, HOME, CharState::Sleeping),
            Action::Become(CharState::Sleeping)
        );
        assert_eq!(go(&s, PARK, CharState::Idle), travel(PARK, CharState::Idle));
    }

    #[test]
    fn dwell_holds_new_states() {
        let s = Situation {
            ticks_in_state: 2,
            needs: needs(1.0, 1.0, 1.0),
            ..sit()
        };
        assert_eq!(dwell(&s).map(|d| d.reason), Some(Reason::Dwell));
        assert_eq!(decide(&s, &P, &mut rng()).action, Action::Stay);
        assert_eq!(dwell(&sit()), None);
    }

    #[test]
    fn sleeping_until_rested_and_daytime() {
        let asleep = Situation {
            state: CharState::Sleeping,
            ..sit()
        };
        // Daytime, tired: keep sleeping.
        let tired = Situation {
            needs: needs(50.0, 70.0, 70.0),
            ..asleep
        };
        assert!(keep_sleeping(&tired).is_some());
        // Night, rested: keep sleeping.
        let night_rested = Situation {
            needs: needs(95.0, 70.0, 70.0),
            minute: 23 * 60,
            ..asleep
        };
        assert!(keep_sleeping(&night_rested).is_some());
        // Daytime, rested: wake up (to idle, nothing else pressing).
        let rested = Situation {
            needs: needs(95.0, 70.0, 70.0),
            ..asleep
        };
        assert!(keep_sleeping(&rested).is_none());
        let mut r = rng();
        let lingering = (0..200)
            .filter(|_| linger_in_bed(&rested, &mut r).is_some())
            .count();
        assert!((150..200).contains(&lingering), "{lingering}");
        let woke = (0..200)
            .map(|_| decide(&rested, &P, &mut r).action)
            .find(|a| *a != Action::Stay);
        assert_eq!(woke, Some(Action::Become(CharState::Idle)));
        // Hungry sleepers do not linger.
        let peckish = Situation {
            needs: needs(95.0, 25.0, 70.0),
            ..rested
        };
        assert!(linger_in_bed(&peckish, &mut r).is_none());
        // Starving wakes a tired sleeper by day, who then goes to eat.
        let starving = Situation {
            needs: needs(50.0, 5.0, 70.0),
            minute: 8 * 60,
            ..asleep
        };
        assert!(keep_sleeping(&starving).is_none());
        assert_eq!(decide(&starving, &P, &mut rng()).reason, Reason::Hungry);
    }

    #[test]
    fn exhausted_goes_home_to_sleep() {
        let s = Situation {
            needs: needs(10.0, 70.0, 70.0),
            at: PARK,
            ..sit()
        };
        let d = exhausted(&s, &P).expect("exhausted");
        assert_eq!(d.action, travel(HOME, CharState::Sleeping));
        let at_home = Situation { at: HOME, ..s };
        assert_eq!(
            decide(&at_home, &P, &mut rng()).action,
            Action::Become(CharState::Sleeping)
        );
        assert!(exhausted(&sit(), &P).is_none());
    }

    #[test]
    fn night_sends_everyone_home_to_sleep() {
        let s = Situation {
            minute: 23 * 60,
            at: TAVERN,
            ..sit()
        };
        assert_eq!(
            night(&s, &P).map(|d| d.action),
            Some(travel(HOME, CharState::Sleeping))
        );
        assert!(night(&sit(), &P).is_none());
        // Socializing stops at night.
        let social = Situation {
            state: CharState::Socializing,
            needs: needs(70.0, 70.0, 50.0),
            ..s
        };
        assert!(keep_socializing(&social).is_none());
        assert_eq!(decide(&social, &P, &mut rng()).reason, Reason::Night);
    }

    #[test]
    fn hungry_eats_at_market_tavern_or_home() {
        let s = Situation {
            needs: needs(70.0, 20.0, 70.0),
            at: PARK,
            ..sit()
        };
        let mut r = rng();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let d = hungry(&s, &P, &mut r).expect("hungry");
            match d.action {
                Action::Travel {
                    to,
                    then: CharState::Eating,
                } => {
                    seen.insert(to);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, [HOME, MARKET].into_iter().collect());
        // Late evening: the tavern instead of the market.
        let evening = Situation {
            minute: 20 * 60,
            ..s
        };
        let places: std::collections::BTreeSet<_> = (0..100)
            .map(|_| match hungry(&evening, &P, &mut r).map(|d| d.action) {
                Some(Action::Travel { to, .. }) => to,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(places, [HOME, TAVERN].into_iter().collect());
        assert!(hungry(&sit(), &P, &mut r).is_none());
    }

    #[test]
    fn eating_until_fed() {
        let eating = Situation {
            state: CharState::Eating,
            needs: needs(70.0, 60.0, 70.0),
            at: MARKET,
            ..sit()
        };
        assert!(keep_eating(&eating).is_some());
        let fed = Situation {
            needs: needs(70.0, FED, 70.0),
            ..eating
        };
        assert!(keep_eating(&fed).is_none());
        assert_eq!(
            decide(&fed, &P, &mut rng()).action,
            Action::Become(CharState::Idle)
        );
    }

    #[test]
    fn work_hours_send_workers_to_work() {
        let s = Situation {
            works_today: true,
            minute: 10 * 60,
            ..sit()
        };
        assert_eq!(
            decide(&s, &P, &mut rng()).action,
            travel(WORK, CharState::Working)
        );
        let day_off = Situation {
            works_today: false,
            ..s
        };
        assert!(work(&day_off, &P).is_none());
        let evening = Situation {
            minute: 18 * 60,
            ..s
        };
        assert!(work(&evening, &P).is_none());
        let working = Situation {
            state: CharState::Working,
            at: WORK,
            ..s
        };
        assert_eq!(keep_working(&working).map(|d| d.action), Some(Action::Stay));
        // A hungry worker takes a meal break.
        let hungry_worker = Situation {
            needs: needs(70.0, 20.0, 70.0),
            ..working
        };
        assert!(keep_working(&hungry_worker).is_none());
        assert_eq!(
            decide(&hungry_worker, &P, &mut rng()).reason,
            Reason::Hungry
        );
    }

    #[test]
    fn shift_end_leaves_work() {
        let s = Situation {
            state: CharState::Working,
            at: WORK,
            works_today: true,
            minute: SHIFT_END + FINISH_UP_TICKS,
            ..sit()
        };
        assert!(keep_working(&s).is_none());
        assert!(finish_up(&s, &mut rng()).is_none());
        let d = decide(&s, &P, &mut rng());
        assert_eq!(
            d,
            Decision::new(travel(HOME, CharState::Idle), Reason::ShiftEnd)
        );
        // Still within the shift: no shift end.
        let mid = Situation {
            minute: 12 * 60,
            ..s
        };
        assert!(leave_work(&mid, &P, &mut rng()).is_none());
        // Hungry at shift end: goes to eat, still reported as the shift ending.
        let hungry_end = Situation {
            needs: needs(70.0, 20.0, 70.0),
            ..s
        };
        let d = leave_work(&hungry_end, &P, &mut rng()).expect("shift end");
        assert_eq!(d.reason, Reason::ShiftEnd);
        assert!(matches!(
            d.action,
            Action::Travel {
                then: CharState::Eating,
                ..
            }
        ));
    }

    #[test]
    fn finishing_up_spreads_leaving_over_the_first_hour() {
        let s = Situation {
            state: CharState::Working,
            at: WORK,
            works_today: true,
            minute: SHIFT_END,
            ..sit()
        };
        let mut r = rng();
        let staying = (0..1000)
            .filter(|_| finish_up(&s, &mut r).is_some())
            .count();
        assert!((780..920).contains(&staying), "{staying}");
        let left = (0..100)
            .map(|_| decide(&s, &P, &mut r))
            .find(|d| d.action != Action::Stay)
            .expect("leaves eventually");
        assert_eq!(left.reason, Reason::ShiftEnd);
        // Mid-shift, finishing up does not apply (keep_working does).
        let mid = Situation {
            minute: 12 * 60,
            ..s
        };
        assert!(finish_up(&mid, &mut r).is_none());
    }

    #[test]
    fn lonely_finds_company_at_park_or_tavern() {
        let s = Situation {
            needs: needs(70.0, 70.0, 20.0),
            ..sit()
        };
        assert_eq!(
            decide(&s, &P, &mut rng()).action,
            travel(PARK, CharState::Socializing)
        );
        let evening = Situation {
            minute: 19 * 60,
            ..s
        };
        assert_eq!(
            lonely(&evening, &P).map(|d| d.action),
            Some(travel(TAVERN, CharState::Socializing))
        );
        assert!(lonely(&sit(), &P).is_none());
        let socializing = Situation {
            state: CharState::Socializing,
            at: PARK,
            needs: needs(70.0, 70.0, 60.0),
            ..s
        };
        assert!(keep_socializing(&socializing).is_some());
        let satisfied = Situation {
            needs: needs(70.0, 70.0, SOCIAL_SATISFIED),
            ..socializing
        };
        assert!(keep_socializing(&satisfied).is_none());
    }

    #[test]
    fn idle_sometimes_wanders() {
        // Not idle yet: become idle in place.
        let eating_done = Situation {
            state: CharState::Eating,
            ..sit()
        };
        assert_eq!(
            idle(&eating_done, &P, &mut rng()).action,
            Action::Become(CharState::Idle)
        );
        // Freshly idle: no wandering, no RNG draw.
        let fresh = Situation {
            ticks_in_state: 10,
            ..sit()
        };
        let mut r = rng();
        let before = r.get_word_pos();
        assert_eq!(idle(&fresh, &P, &mut r).action, Action::Stay);
        assert_eq!(r.get_word_pos(), before);
        // Settled at home: mostly stays, sometimes goes to the park, never "home".
        let settled = Situation {
            ticks_in_state: 100,
            ..sit()
        };
        let decisions: Vec<_> = (0..2000).map(|_| idle(&settled, &P, &mut r)).collect();
        let wanders = decisions
            .iter()
            .filter(|d| d.action == travel(PARK, CharState::Idle))
            .count();
        assert!(wanders > 0 && wanders < 100, "{wanders}");
        assert!(decisions.iter().all(|d| d.reason != Reason::GoHome));
        // Settled away from home: sometimes walks home.
        let away = Situation {
            at: MARKET,
            ..settled
        };
        assert!((0..2000)
            .map(|_| idle(&away, &P, &mut r))
            .any(|d| d.action == travel(HOME, CharState::Idle)));
    }

    #[test]
    fn traveling_is_left_to_movement() {
        let s = Situation {
            state: CharState::Traveling,
            needs: needs(1.0, 1.0, 1.0),
            ..sit()
        };
        assert_eq!(decide(&s, &P, &mut rng()).reason, Reason::OnTheWay);
    }

    #[test]
    fn priorities_exhaustion_over_hunger_over_work_over_company() {
        let mut s = Situation {
            works_today: true,
            minute: 10 * 60,
            needs: needs(10.0, 10.0, 10.0),
            ..sit()
        };
        assert_eq!(decide(&s, &P, &mut rng()).reason, Reason::Exhausted);
        s.needs.energy = 60.0;
        assert_eq!(decide(&s, &P, &mut rng()).reason, Reason::Hungry);
        s.needs.hunger = 60.0;
        assert_eq!(decide(&s, &P, &mut rng()).reason, Reason::Work);
        s.works_today = false;
        assert_eq!(decide(&s, &P, &mut rng()).reason, Reason::Lonely);
    }
}
