//! Breakpoint conditions (protocol, "Time travel and breakpoints"): a small language
//! over the characters, the state counts and the tick, read by a hand-written
//! recursive-descent parser that reports where and why a condition cannot be read, and
//! evaluated against the world at the end of each tick.
//!
//! ```text
//! expr  := all ("or" all)*
//! all   := atom ("and" atom)*
//! atom  := "(" expr ")" | "tick" CMP INT | "count" STATE CMP INT
//!        | "any" NEED CMP NUMBER | "character" INT (NEED CMP NUMBER | "state" EQ STATE)
//! CMP   := "<" | "<=" | ">" | ">=" | "==" | "!="      EQ := "==" | "!="
//! NEED  := energy | hunger | social
//! ```
//!
//! `and` binds tighter than `or`. A condition that holds names the characters that made
//! it true (`character N …`: N; `any …`: every character for which it holds; `count`
//! and `tick`: none of their own).
//!
//! The breakpoints set ([`Breakpoints`]) belong to the persisted state
//! (`SimState::breakpoints`): `break` and `unbreak` are journaled commands, a hit is
//! journaled as the `unbreak` of the breakpoint that fired and a `pause`, and a
//! snapshot holds each breakpoint as `{id, when}` (the condition is read again on
//! load) with the id the next one gets, so ids are never reused across restarts.

use super::{Census, World};
use crate::protocol::{CharState, CharacterId};
use serde::{Deserialize, Serialize};

/// Why a condition cannot be read: the byte offset in it and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition: at {at}: {reason}")]
pub struct ParseError {
    pub at: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    /// `a cmp b`, for the tick and counts (integers) and the needs (floats).
    fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Energy,
    Hunger,
    Social,
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Tick(Cmp, u64),
    Count(CharState, Cmp, u64),
    Any(Need, Cmp, f64),
    CharacterNeed(CharacterId, Need, Cmp, f64),
    CharacterState(CharacterId, bool, CharState),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

/// One word or symbol of a condition, with where it starts.
#[derive(Debug, Clone, PartialEq)]
struct Token<'a> {
    at: usize,
    text: &'a str,
}

fn tokenize(src: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let mut tokens = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'(' || c == b')' {
            i += 1;
        } else if b"<>=!".contains(&c) {
            i += 1;
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
            }
        } else if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || b"._-".contains(&bytes[i]))
            {
                i += 1;
            }
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(ParseError {
                at: i,
                reason: format!("unexpected character {ch:?}"),
            });
        }
        tokens.push(Token {
            at: start,
            text: &src[start..i],
        });
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.pos)
    }

    fn error(&self, reason: impl Into<String>) -> ParseError {
        let at = self.peek().map_or(self.end, |t| t.at);
        ParseError {
            at,
            reason: reason.into(),
        }
    }

    /// The next token, or "expected WHAT, found the end".
    fn next(&mut self, what: &str) -> Result<Token<'a>, ParseError> {
        let token = self
            .peek()
            .cloned()
            .ok_or_else(|| self.error(format!("expected {what}, found the end")))?;
        self.pos += 1;
        Ok(token)
    }

    fn found(&self, what: &str, token: &Token<'_>) -> ParseError {
        ParseError {
            at: token.at,
            reason: format!("expected {what}, found `{}`", token.text),
        }
    }

    fn expr(&mut self) -> Result<Cond, ParseError> {
        let mut left = self.all()?;
        while self
            .peek()
            .is_some_and(|t| t.text.eq_ignore_ascii_case("or"))
        {
            self.pos += 1;
            left = Cond::Or(Box::new(left), Box::new(self.all()?));
        }
        Ok(left)
    }

    fn all(&mut self) -> Result<Cond, ParseError> {
        let mut left = self.atom()?;
        while self
            .peek()
            .is_some_and(|t| t.text.eq_ignore_ascii_case("and"))
        {
            self.pos += 1;
            left = Cond::And(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Cond, ParseError> {
        let what = "`tick`, `count`, `any`, `character` or `(`";
        let token = self.next(what)?;
        match token.text.to_ascii_lowercase().as_str() {
            "(" => {
                let inner = self.expr()?;
                let close = self.next("`)`")?;
                if close.text != ")" {
                    return Err(self.found("`)`", &close));
                }
                Ok(inner)
            }
            "tick" => Ok(Cond::Tick(self.cmp()?, self.int("a tick")?)),
            "count" => Ok(Cond::Count(
                self.state()?,
                self.cmp()?,
                self.int("a count")?,
            )),
            "any" => Ok(Cond::Any(self.need()?, self.cmp()?, self.number()?)),
            "character" => self.character(),
            _ => Err(self.found(what, &token)),
        }
    }

    fn character(&mut self) -> Result<Cond, ParseError> {
        let id = self.int("a character id")?;
        let is_state = self
            .peek()
            .is_some_and(|t| t.text.eq_ignore_ascii_case("state"));
        if is_state {
            self.pos += 1;
            let op = self.next("`==` or `!=`")?;
            let equal = match op.text {
                "==" => true,
                "!=" => false,
                _ => return Err(self.found("`==` or `!=`", &op)),
            };
            return Ok(Cond::CharacterState(id, equal, self.state()?));
        }
        Ok(Cond::CharacterNeed(
            id,
            self.need()?,
            self.cmp()?,
            self.number()?,
        ))
    }

    fn cmp(&mut self) -> Result<Cmp, ParseError> {
        let what = "a comparison (<, <=, >, >=, ==, !=)";
        let token = self.next(what)?;
        Ok(match token.text {
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            "==" => Cmp::Eq,
            "!=" => Cmp::Ne,
            _ => return Err(self.found(what, &token)),
        })
    }

    fn need(&mut self) -> Result<Need, ParseError> {
        let what = "a need (energy, hunger, social) or `state`";
        let token = self.next(what)?;
        Ok(match token.text.to_ascii_lowercase().as_str() {
            "energy" => Need::Energy,
            "hunger" => Need::Hunger,
            "social" => Need::Social,
            _ => return Err(self.found(what, &token)),
        })
    }

    fn state(&mut self) -> Result<CharState, ParseError> {
        let names: Vec<&str> = CharState::ALL.iter().map(|s| s.as_str()).collect();
        let what = format!("a state ({})", names.join(", "));
        let token = self.next(&what)?;
        let lower = token.text.to_ascii_lowercase();
        let state = CharState::ALL.iter().find(|s| s.as_str() == lower);
        state.copied().ok_or_else(|| self.found(&what, &token))
    }

    fn int(&mut self, what: &str) -> Result<u64, ParseError> {
        let token = self.next(what)?;
        token
            .text
            .trim_start_matches('#')
            .parse()
            .map_err(|_| self.found(&format!("{what} (a whole number)"), &token))
    }

    fn number(&mut self) -> Result<f64, ParseError> {
        let token = self.next("a number")?;
        match token.text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(self.found("a number", &token)),
        }
    }
}

/// Reads a condition.
pub fn parse(src: &str) -> Result<Cond, ParseError> {
    let tokens = tokenize(src)?;
    if tokens.is_empty() {
        return Err(ParseError {
            at: 0,
            reason: "the condition is empty".into(),
        });
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        end: src.len(),
    };
    let cond = parser.expr()?;
    if let Some(token) = parser.peek().cloned() {
        return Err(parser.found("`and`, `or` or the end", &token));
    }
    Ok(cond)
}

/// What conditions read of one tick's world: its [`Census`] (taken once per tick, and
/// shared with the time series), so `count` is a lookup and `any` scans the characters
/// only when the lowest or highest value of the need says it may hold.
pub struct Probe<'a> {
    world: &'a World,
    census: Census,
    /// No characters at all: no `any` holds.
    empty: bool,
}

impl<'a> Probe<'a> {
    pub fn new(world: &'a World) -> Self {
        Self::with_census(world, world.census_full())
    }

    pub fn with_census(world: &'a World, census: Census) -> Self {
        let empty = census.counts.iter().all(|&n| n == 0);
        Probe {
            world,
            census,
            empty,
        }
    }

    fn count(&self, state: CharState) -> u32 {
        self.census.counts[state_index(state)]
    }

    /// Whether some character's `need` satisfies `cmp v`. The census's lowest and
    /// highest value decide it for every comparison but `==`, which scans only when `v`
    /// lies within that range.
    fn any(&self, need: Need, cmp: Cmp, v: f64) -> bool {
        if self.empty || !self.may_hold(need, cmp, v) {
            return false;
        }
        cmp != Cmp::Eq
            || self
                .world
                .character_needs()
                .any(|(_, _, needs)| pick(need, &needs) == v)
    }

    /// Whether some character's `need` may satisfy `cmp v`, from the range alone (exact
    /// for every comparison but `==`).
    fn may_hold(&self, need: Need, cmp: Cmp, v: f64) -> bool {
        let i = need as usize;
        let (lo, hi) = (self.census.min[i], self.census.max[i]);
        match cmp {
            Cmp::Lt | Cmp::Le => cmp.holds(lo, v),
            Cmp::Gt | Cmp::Ge => cmp.holds(hi, v),
            Cmp::Eq => lo <= v && v <= hi,
            Cmp::Ne => !(lo == hi && lo == v),
        }
    }
}

impl Cond {
    /// The same condition with the operands of every `and` and `or` in cheapest-first
    /// order, for [`Cond::holds`]: `tick` and `count` read a number, `any` the census,
    /// a `character` condition looks the character up. Evaluation has no side effects,
    /// so the order changes only how soon a check short-circuits (`character 7 state ==
    /// sleeping and tick < 0` never looks 7 up). [`Cond::eval_in`] keeps the order as
    /// written, so `or` names the characters of its first operand that holds.
    pub fn cheap_first(&self) -> Cond {
        let order = |a: &Cond, b: &Cond| {
            let (a, b) = (a.cheap_first(), b.cheap_first());
            if b.cost() < a.cost() {
                (Box::new(b), Box::new(a))
            } else {
                (Box::new(a), Box::new(b))
            }
        };
        match self {
            Cond::And(a, b) => {
                let (a, b) = order(a, b);
                Cond::And(a, b)
            }
            Cond::Or(a, b) => {
                let (a, b) = order(a, b);
                Cond::Or(a, b)
            }
            leaf => leaf.clone(),
        }
    }

    /// A rough relative cost of checking the condition once.
    fn cost(&self) -> u32 {
        match self {
            Cond::Tick(..) | Cond::Count(..) => 1,
            Cond::Any(_, Cmp::Eq, _) => 8,
            Cond::Any(..) => 2,
            Cond::CharacterNeed(..) | Cond::CharacterState(..) => 4,
            Cond::And(a, b) | Cond::Or(a, b) => a.cost() + b.cost(),
        }
    }

    /// Whether the condition holds, without naming the characters: the per-tick check.
    /// It allocates nothing and reads the census where it can, so a tick's 20
    /// breakpoints cost tens of nanoseconds each; [`Cond::eval_in`] (which collects the
    /// ids) runs only for the one that holds.
    pub fn holds(&self, probe: &Probe<'_>) -> bool {
        match self {
            Cond::Tick(cmp, n) => cmp.holds(probe.world.tick(), *n),
            Cond::Count(state, cmp, n) => cmp.holds(u64::from(probe.count(*state)), *n),
            Cond::Any(need, cmp, v) => probe.any(*need, *cmp, *v),
            Cond::CharacterNeed(id, need, cmp, v) => probe
                .world
                .character_state(*id)
                .is_some_and(|(_, needs)| cmp.holds(pick(*need, &needs), *v)),
            Cond::CharacterState(id, equal, state) => probe
                .world
                .character_state(*id)
                .is_some_and(|(now, _)| (now == *state) == *equal),
            Cond::And(a, b) => a.holds(probe) && b.holds(probe),
            Cond::Or(a, b) => a.holds(probe) || b.holds(probe),
        }
    }

    /// [`Cond::eval`] sharing `probe` with other conditions of the same tick.
    pub fn eval_in(&self, probe: &Probe<'_>) -> Option<Vec<CharacterId>> {
        let world = probe.world;
        match self {
            Cond::Tick(..) | Cond::Count(..) => self.holds(probe).then(Vec::new),
            Cond::Any(need, cmp, v) if !probe.any(*need, *cmp, *v) => None,
            Cond::Any(need, cmp, v) => {
                let ids: Vec<CharacterId> = world
                    .character_needs()
                    .filter(|(_, _, needs)| cmp.holds(pick(*need, needs), *v))
                    .map(|(id, _, _)| id)
                    .collect();
                (!ids.is_empty()).then_some(ids)
            }
            Cond::CharacterNeed(id, ..) | Cond::CharacterState(id, ..) => {
                self.holds(probe).then(|| vec![*id])
            }
            Cond::And(a, b) => {
                let mut ids = a.eval_in(probe)?;
                ids.extend(b.eval_in(probe)?);
                ids.sort_unstable();
                ids.dedup();
                Some(ids)
            }
            Cond::Or(a, b) => a.eval_in(probe).or_else(|| b.eval_in(probe)),
        }
    }
}

fn state_index(state: CharState) -> usize {
    CharState::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

fn pick(need: Need, needs: &crate::protocol::Needs) -> f64 {
    match need {
        Need::Energy => needs.energy,
        Need::Hunger => needs.hunger,
        Need::Social => needs.social,
    }
}

/// A `break` condition waiting to hold. On disk it is `{id, when}`; the condition is
/// read again from `when` when a snapshot is loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "SavedBreakpoint", into = "SavedBreakpoint")]
pub struct Breakpoint {
    pub id: u64,
    /// The condition as the operator wrote it.
    pub when: String,
    /// As written: names the characters of a hit.
    cond: Cond,
    /// `cond` cheapest operand first: the per-tick check.
    check: Cond,
}

/// A [`Breakpoint`] as a snapshot spells it.
#[derive(Serialize, Deserialize)]
struct SavedBreakpoint {
    id: u64,
    when: String,
}

impl TryFrom<SavedBreakpoint> for Breakpoint {
    type Error = ParseError;

    fn try_from(saved: SavedBreakpoint) -> Result<Self, ParseError> {
        Breakpoint::new(saved.id, saved.when)
    }
}

impl From<Breakpoint> for SavedBreakpoint {
    fn from(b: Breakpoint) -> Self {
        SavedBreakpoint {
            id: b.id,
            when: b.when,
        }
    }
}

impl Breakpoint {
    fn new(id: u64, when: String) -> Result<Self, ParseError> {
        let cond = parse(&when)?;
        let check = cond.cheap_first();
        Ok(Breakpoint {
            id,
            when,
            cond,
            check,
        })
    }
}

/// The breakpoint that holds at the end of a tick, and the characters that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: u64,
    pub when: String,
    pub characters: Vec<CharacterId>,
}

/// The breakpoints set, in the order they were (`break`), each firing once, and the id
/// the next one gets: ids count up from 1 and are never reused, not even after a
/// restart (the counter is saved with them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Breakpoints {
    next_id: u64,
    set: Vec<Breakpoint>,
}

impl Default for Breakpoints {
    fn default() -> Self {
        Breakpoints {
            next_id: 1,
            set: Vec::new(),
        }
    }
}

impl Breakpoints {
    /// `break {when}`: the new breakpoint's id, or where and why `when` cannot be read.
    pub fn add(&mut self, when: &str) -> Result<u64, ParseError> {
        let id = self.next_id;
        self.set.push(Breakpoint::new(id, when.to_owned())?);
        self.next_id += 1;
        Ok(id)
    }

    /// `unbreak {id}`: whether there was such a breakpoint (now gone).
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.set.len();
        self.set.retain(|b| b.id != id);
        self.set.len() < before
    }

    /// The breakpoints set, in the order they were.
    pub fn iter(&self) -> impl Iterator<Item = &Breakpoint> {
        self.set.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The first breakpoint (in the order they were set) whose condition holds in
    /// `probe`'s world; it stays set (the caller removes it, through `unbreak`).
    pub fn first_holding(&self, probe: &Probe<'_>) -> Option<Hit> {
        let b = self.set.iter().find(|b| b.check.holds(probe))?;
        Some(Hit {
            id: b.id,
            when: b.when.clone(),
            characters: b.cond.eval_in(probe).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_examples_are_understood() {
        for src in [
            "character 7 hunger < 20",
            "character 7 state == sleeping",
            "count sleeping > 100",
            "any energy < 5",
            "tick >= 5000",
            "tick >= 10 and any energy < 5 or count idle == 0",
            "(tick > 3 or tick < 1) and character 2 state != working",
        ] {
            parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        }
        assert_eq!(
            parse("tick > 1 or tick > 2 and tick > 3"),
            Ok(Cond::Or(
                Box::new(Cond::Tick(Cmp::Gt, 1)),
                Box::new(Cond::And(
                    Box::new(Cond::Tick(Cmp::Gt, 2)),
                    Box::new(Cond::Tick(Cmp::Gt, 3))
                ))
            )),
            "and binds tighter"
        );
    }

    #[test]
    fn cheap_first_puts_lookups_last_and_keeps_the_rest() {
        let c = parse("character 7 state == sleeping and tick < 0").expect("parses");
        assert_eq!(
            c.cheap_first(),
            parse("tick < 0 and character 7 state == sleeping").expect("parses")
        );
        let same = parse("tick > 1 or count idle > 2").expect("parses");
        assert_eq!(same.cheap_first(), same, "equal costs keep their order");
    }

    #[test]
    fn broken_conditions_say_where_and_why() {
        let at = |src: &str| parse(src).expect_err(src);
        let e = at("character 7 hungry < 20");
        assert_eq!(e.at, 12);
        assert!(e.reason.contains("a need"), "{e}");
        let e = at("count dancing > 1");
        assert_eq!(e.at, 6);
        assert!(e.reason.contains("sleeping"), "{e}");
        let e = at("tick >= ");
        assert_eq!(e.at, 8);
        assert!(e.reason.contains("the end"), "{e}");
        assert_eq!(at("tick => 5").at, 5);
        assert_eq!(at("tick > 5 tick > 6").at, 9);
        assert_eq!(at("(tick > 5").at, 9);
        assert_eq!(at("tick > 5 $").at, 9);
        assert_eq!(at("").at, 0);
    }

    /// The per-tick check and the full evaluation agree, tick after tick, for every kind
    /// of condition (including `any` with each comparison, decided from the census).
    #[test]
    fn holds_agrees_with_the_full_evaluation() {
        let mut world = World::new(11, 40);
        let mut out = Vec::new();
        let conditions: Vec<Cond> = [
            "any energy < 60",
            "any energy <= 60",
            "any hunger > 70",
            "any hunger >= 70",
            "any social != 50",
            "any social == 50",
            "any energy == 100",
            "count sleeping > 10",
            "count idle <= 3",
            "tick >= 30",
            "character 3 hunger < 50",
            "character 5 state == working",
            "character 5 state != sleeping and tick > 20",
            "character 999 energy > 0",
            "tick < 5 or any energy < 40",
        ]
        .iter()
        .map(|src| parse(src).expect(src))
        .collect();
        let mut held = 0;
        for _ in 0..120 {
            world.step(0.0, &mut out);
            out.clear();
            let probe = Probe::new(&world);
            for c in &conditions {
                let full = c.eval_in(&probe).is_some();
                assert_eq!(c.holds(&probe), full, "{c:?} at tick {}", world.tick());
                assert_eq!(c.cheap_first().holds(&probe), full, "{c:?} reordered");
                held += usize::from(full);
            }
        }
        assert!(
            held > 0 && held < 120 * conditions.len(),
            "{held}: some hold, some do not"
        );
    }

    #[test]
    fn conditions_hold_with_the_characters_that_made_them_true() {
        let mut world = World::new(3, 20);
        let mut out = Vec::new();
        for _ in 0..5 {
            world.step(0.0, &mut out);
        }
        let holds = |src: &str| parse(src).expect("parses").eval_in(&Probe::new(&world));
        assert_eq!(holds("tick >= 5"), Some(vec![]));
        assert_eq!(holds("tick > 5"), None);
        assert_eq!(holds("any energy <= 100").map(|ids| ids.len()), Some(20));
        assert_eq!(holds("any energy > 100"), None);
        assert_eq!(holds("character 4 energy >= 0"), Some(vec![4]));
        assert_eq!(
            holds("character 999 energy >= 0"),
            None,
            "no such character"
        );
        let (_, state, _) = world.character_needs().find(|c| c.0 == 4).expect("4");
        let same = format!("character 4 state == {}", state.as_str());
        assert_eq!(holds(&same), Some(vec![4]));
        assert_eq!(
            holds("count idle >= 0 and character 2 energy >= 0"),
            Some(vec![2])
        );
        assert_eq!(holds("tick > 99 or character 3 energy >= 0"), Some(vec![3]));
    }
}
