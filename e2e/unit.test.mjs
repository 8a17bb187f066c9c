// Unit tests of the dashboard's pure logic (no browser): console parsing, backoff,
// and the store's dedupe / ordering / replay rules. Run with `node --test unit.test.mjs`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parseLine } from '../static/js/console.js';
import { backoffDelay } from '../static/js/transport.js';
import { Store, snapshotCharacters } from '../static/js/store.js';

test('console words map to contract commands', () => {
  assert.deepEqual(parseLine('step 10'), { cmd: 'step', args: { ticks: 10 } });
  assert.deepEqual(parseLine('step'), { cmd: 'step', args: { ticks: 1 } });
  assert.deepEqual(parseLine('set_state 42 sleeping'), { cmd: 'set_state', args: { character_id: 42, state: 'sleeping' } });
  assert.deepEqual(parseLine('set-state #42 Sleeping'), { cmd: 'set_state', args: { character_id: 42, state: 'sleeping' } });
  assert.deepEqual(parseLine('pause'), { cmd: 'pause', args: {} });
  assert.deepEqual(parseLine('inspect 3'), { cmd: 'inspect', args: { character_id: 3 } });
  assert.deepEqual(parseLine('schedule festival 20 {"x":1}'), { cmd: 'schedule', args: { event_type: 'festival', in_ticks: 20, data: { x: 1 } } });
  assert.deepEqual(parseLine('schedule construction_complete --in 50'), { cmd: 'schedule', args: { event_type: 'construction_complete', in_ticks: 50 } });
  assert.deepEqual(parseLine('speed 2.5'), { cmd: 'set_speed', args: { tick_rate: 2.5 } });
  assert.deepEqual(parseLine('reset 7'), { cmd: 'reset', args: { seed: 7 } });
  assert.deepEqual(parseLine('reset'), { cmd: 'reset', args: {} });
  assert.deepEqual(parseLine('debug_log on'), { cmd: 'debug_log', args: { enabled: true } });
  assert.deepEqual(parseLine('{"cmd":"cancel","args":{"event_id":3}}'), { cmd: 'cancel', args: { event_id: 3 } });
  assert.deepEqual(parseLine('help'), { local: 'help' });
  assert.throws(() => parseLine('step ten'), /whole number/);
  assert.throws(() => parseLine('schedule festival soon'), /usage/);
  assert.throws(() => parseLine('fly 3'), /unknown command/);
});

test('backoff: full jitter below min(30 s, 500 ms · 2^attempt)', () => {
  assert.equal(backoffDelay(0, () => 0), 0);
  assert.equal(backoffDelay(0, () => 0.999), 499);
  assert.equal(backoffDelay(3, () => 0.5), 2000);
  assert.equal(backoffDelay(20, () => 0.999), 29970);
});

const snap = (seq, extra = {}) => ({
  tick: 10, paused: false, tick_rate: 10, seed: 1, seq, resync: false,
  locations: [{ id: 'home_0', name: 'Home 0', kind: 'home', position: [1, 1] }],
  characters: [{ id: 1, name: 'Ada', state: 'idle', location: 'home_0', position: [1, 1], needs: { energy: 1, hunger: 1, social: 1 }, state_since: 0 }],
  ...extra,
});
const change = (seq, tick, to) => ({
  type: 'batch', seq,
  data: [{ type: 'state_change', data: { character_id: 1, name: 'Ada', old_state: 'idle', new_state: to, location: 'home_0', tick } }],
});

test('store: dedupes, applies in seq order, replays resumed batches into the log only', () => {
  const s = new Store();
  const logged = [];
  s.on('batch', (items, { replay, log }) => { if (replay || log !== false) logged.push(items[0]?.data.tick); });
  s.applySnapshot(snap(5));
  s.applyBatch(change(7, 12, 'eating')); // early: waits for 6
  assert.equal(s.seq, 5);
  s.applyBatch(change(6, 11, 'working'));
  assert.equal(s.seq, 7);
  assert.equal(s.characters.get(1).state, 'eating');
  assert.equal(s.tick, 12);
  s.applyBatch(change(7, 12, 'eating')); // duplicate
  assert.equal(s.stats.duplicates, 1);
  assert.deepEqual(logged, [11, 12]);
  assert.equal(s.counts.eating, 1);
  assert.equal(s.counts.idle, 0);

  // Reconnect: the new snapshot covers 8..9; resume re-sends them for the log.
  s.applySnapshot(snap(9, { tick: 14 }));
  assert.equal(s.logSeq, 7);
  s.applyBatch(change(8, 13, 'idle'));
  s.applyBatch(change(9, 14, 'sleeping'));
  assert.equal(s.stats.replayed, 2);
  assert.equal(s.characters.get(1).state, 'idle', 'replayed batches do not touch state');
  s.applyBatch(change(10, 15, 'eating'));
  assert.equal(s.characters.get(1).state, 'eating');
  assert.deepEqual(logged, [11, 12, 13, 14, 15]);

  // A restarted server (seq went backwards) or a resync replaces everything.
  s.applySnapshot(snap(2, { tick: 3 }));
  assert.equal(s.seq, 2);
  assert.equal(s.logSeq, 2);
  assert.equal(s.tick, 3);
});

test('store: 1.1 ranges chain by from_seq; a gap asks for one resume and the repair fills it', () => {
  const s = new Store();
  const range = (from, seq, tick, to) => ({ ...change(seq, tick, to), from_seq: from });
  const gaps = [];
  s.on('gap-detected', (g) => gaps.push(g));
  s.applySnapshot(snap(5));
  s.applyBatch(range(6, 8, 11, 'working')); // three broker batches in one frame
  assert.equal(s.seq, 8);
  s.applyBatch(range(12, 13, 14, 'eating')); // 9..11 lost
  s.applyBatch(range(14, 14, 15, 'sleeping')); // still behind the gap: no second resume
  assert.deepEqual(gaps, [{ from: 9, to: 11, lastSeq: 8 }]);
  assert.equal(s.seq, 8, 'nothing applied past a gap');
  s.applyBatch(range(9, 13, 14, 'eating')); // the resume's catch-up
  assert.equal(s.seq, 14, 'the held frame after the repair applies');
  assert.equal(s.characters.get(1).state, 'sleeping');
  assert.equal(s.pending.size, 0, 'the stale held frame was dropped');
  assert.equal(s.stats.gaps, 1);
  s.applyBatch(range(12, 14, 15, 'idle')); // a duplicate range
  assert.equal(s.stats.duplicates, 1);
});

test('header clock: the server clock advanced by ticks, never derived from the tick alone', async () => {
  const { fmtClock } = await import('../static/js/util.js');
  const base = { day: 1, minute_of_day: 360, tick: 0 }; // the server's clock at tick 0
  assert.equal(fmtClock(base, 0), 'day 1, 06:00');
  assert.equal(fmtClock(base, 180), 'day 1, 09:00', 'the 09:00 shift starts at tick 180');
  assert.equal(fmtClock(base, 1080), 'day 2, 00:00', 'days roll over at midnight');
  assert.equal(fmtClock({ day: 3, minute_of_day: 690, tick: 3570 }, 3600), 'day 3, 12:00');
  assert.equal(fmtClock(null, 5), '–', 'no server clock, no clock');
});

test('control items: the store follows paused, speed and seed; the log says who did what', async () => {
  const { describeControl } = await import('../static/js/util.js');
  const s = new Store();
  s.applySnapshot(snap(5));
  const control = (seq, command, args) => ({
    type: 'batch', from_seq: seq, seq,
    data: [{ type: 'event_notification', data: { event_type: 'control', tick: 10, data: { command, by: 'alice', args } } }],
  });
  s.applyBatch(control(6, 'pause', {}));
  assert.equal(s.paused, true);
  s.applyBatch(control(7, 'set_speed', { tick_rate: 5 }));
  assert.equal(s.tickRate, 5);
  s.applyBatch(control(8, 'resume', {}));
  assert.equal(s.paused, false);
  s.applyBatch(control(9, 'reset', { seed: 7 }));
  assert.equal(s.seed, 7);
  assert.equal(describeControl({ command: 'pause', by: 'alice', args: {} }), 'alice paused');
  assert.equal(describeControl({ command: 'set_speed', by: 'bob', args: { tick_rate: 5 } }), 'bob set speed 5');
  assert.equal(describeControl({ command: 'step', by: 'bob', args: { ticks: 1 } }), 'bob stepped 1 tick');
});

test('limits: the slider, the background budget and the help text use the server\'s bounds', async () => {
  const { toRate, toPos } = await import('../static/js/controls.js');
  const { backgroundBudget } = await import('../static/js/transport.js');
  const { helpText } = await import('../static/js/console.js');
  const rates = { min: 0.1, max: 1000 };
  assert.equal(toRate(0, rates), 0.1);
  assert.equal(toRate(1000, rates), 1000);
  assert.equal(toPos(0.1, rates), 0);
  assert.equal(toPos(1000, rates), 1000);
  assert.equal(toPos(5000, rates), 1000, 'clamped to the bounds');
  const narrow = { min: 2, max: 8 };
  assert.equal(toRate(0, narrow), 2);
  assert.equal(toRate(500, narrow), 4);
  assert.equal(toRate(1000, narrow), 8);
  assert.equal(backgroundBudget({ messages: 100, window_ms: 60000 }), 40);
  assert.equal(backgroundBudget({ messages: 10, window_ms: 1000 }), 4);
  assert.equal(backgroundBudget(null), 0, 'no budget known: nothing in the background over WS');
  const help = helpText({ step_ticks: { min: 1, max: 50 }, tick_rate: { min: 2, max: 8 } });
  assert.match(help, /1–50/);
  assert.match(help, /ticks per second, 2–8/);
});

test('audit: console words and entry lines', async () => {
  const { describeEntry } = await import('../static/js/audit.js');
  assert.deepEqual(parseLine('audit'), { cmd: 'audit', args: {} });
  assert.deepEqual(parseLine('audit 5'), { cmd: 'audit', args: { limit: 5 } });
  const ok = describeEntry({ tick: 12, timestamp: 0, by: 'alice', command: 'set_speed', args: { tick_rate: 5 }, ok: true });
  assert.match(ok, /tick 12 · alice set_speed \{"tick_rate":5\}$/);
  const failed = describeEntry({ tick: 3, timestamp: 0, by: 'bob', command: 'remove', args: { character_id: 9 }, ok: false, error: 'unknown character 9' });
  assert.match(failed, /bob remove \{"character_id":9\} — failed: unknown character 9$/);
  assert.match(describeEntry({ tick: 0, timestamp: 0, by: 'c', command: 'pause', args: {}, ok: true }), /c pause$/);
});

test('presence: one line per session, no token in sight', async () => {
  const { describeSession } = await import('../static/js/presence.js');
  const line = describeSession({ session_id: 3, role: 'operator', name: 'alice', transport: 'sse', since: 0 });
  assert.match(line, /^alice · operator · sse · since \d\d:\d\d:\d\d$/);
});

test('the console parses every example of the command table (static/commands.json)', async () => {
  const { COMMANDS } = await import('../static/js/console.js');
  const table = JSON.parse(await readFile(new URL('../static/commands.json', import.meta.url), 'utf8'));
  assert.deepEqual(COMMANDS.map((c) => c.name), table.commands.map((c) => c.name), 'the console reads the table');
  for (const c of table.commands) {
    assert.ok(c.examples?.length, `${c.name} has examples`);
    for (const ex of c.examples) assert.deepEqual(parseLine(ex.line), { cmd: c.name, args: ex.args }, ex.line);
  }
});

test('store: compact snapshot rows expand to the same characters as objects', () => {
  const fields = ['id', 'name', 'state', 'location', 'position', 'needs', 'destination', 'home', 'workplace', 'state_since'];
  const objects = [
    { id: 1, name: 'Ada', state: 'idle', location: 'home_0', position: [1.5, 2], needs: { energy: 1, hunger: 2, social: 3 }, home: 'home_0', workplace: 'work_1', state_since: 4 },
    { id: 2, name: 'Bo', state: 'traveling', location: 'home_1', position: [9, 9.5], needs: { energy: 5, hunger: 6, social: 7 }, destination: 'market', home: 'home_1', workplace: 'work_2', state_since: 8 },
  ];
  const rows = [
    [1, 'Ada', 'idle', 'home_0', [1.5, 2], [1, 2, 3], null, 'home_0', 'work_1', 4],
    [2, 'Bo', 'traveling', 'home_1', [9, 9.5], [5, 6, 7], 'market', 'home_1', 'work_2', 8],
  ];
  assert.deepEqual(snapshotCharacters({ character_fields: fields, characters: rows }), objects);
  assert.deepEqual(snapshotCharacters({ characters: objects }), objects);
  const s = new Store();
  s.applySnapshot(snap(3, { character_fields: fields, characters: rows }));
  assert.equal(s.characters.get(2).destination, 'market');
  assert.equal(s.counts.traveling, 1);
});
