// The client's picture of the world, built from snapshots and batches.
//
// State is applied per message (cheap: a Map update per item); rendering happens
// elsewhere, once per animation frame, reading `version` to know whether anything
// changed. A batch covers the broker's batches `from_seq..seq` (protocol 1.1); it
// applies when `from_seq` is at most one past what the store has, and `seq` is past it.
// A batch whose `from_seq` is further ahead means loss: the store emits `gap`-detected
// (the transport answers with `resume`, which repairs it) and holds the batch briefly.
//
// Two seq cursors:
//   seq    — the last batch whose items are reflected in `characters` (a snapshot
//            sets it to the snapshot's seq).
//   logSeq — the last batch whose items reached the event log. After a reconnect the
//            new connection's snapshot already covers the missed batches, but `resume`
//            still delivers them: they go to the log only, so the log misses nothing.

import { STATES } from './util.js';

const GAP_WAIT_MS = 2000;

export class Store {
  constructor() {
    this.characters = new Map();
    this.locations = [];
    this.locById = new Map();
    this.tick = null;
    this.clock = null; // { day, minute_of_day, tick }: the server's clock at `tick`
    this.seq = null;
    this.logSeq = null;
    this.paused = false;
    this.tickRate = null;
    this.seed = null;
    this.role = null;
    this.sessionId = null;
    this.limits = null; // welcome.data.limits: the server's bounds (rate, step, tick rate, town size)
    this.bootId = null;
    this.past = null; // {tick, characters} while a past tick is shown (viewPast)
    this.epoch = 0; // bumps on every snapshot; late replies from an older epoch are ignored
    this.version = 0; // bumps on any character change (map, table)
    this.structVersion = 0; // bumps when characters come or go (or a snapshot replaces them)
    this.counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    this.pending = new Map(); // from_seq -> batch waiting for a gap to fill
    this.gapTimer = null;
    this.listeners = {};
    this.stats = { snapshots: 0, resyncs: 0, batches: 0, items: 0, duplicates: 0, replayed: 0, gaps: 0, gapsSkipped: 0 };
  }

  on(name, fn) {
    (this.listeners[name] ||= []).push(fn);
  }

  emit(name, ...args) {
    for (const fn of this.listeners[name] || []) fn(...args);
  }

  welcome(data) {
    this.role = data.role;
    this.sessionId = data.session_id;
    this.limits = data.limits ?? null;
    this.bootId = data.boot_id ?? null;
    this.emit('welcome', data);
  }

  /**
   * What the map, the table and the inspector show: the live characters, or while the
   * person looks at a past tick (`view_at`) that tick's. Everything else stays live.
   */
  get shown() {
    return this.past ? this.past.characters : this.characters;
  }

  /** Shows the world of a past tick (a `view_at` reply) instead of the live one. */
  viewPast(data) {
    this.past = { tick: data.tick, characters: new Map(snapshotCharacters(data).map((c) => [c.id, c])) };
    this.version++;
    this.structVersion++;
    this.emit('past', this.past);
  }

  /** Back to the live world. */
  backToLive() {
    if (!this.past) return;
    this.past = null;
    this.version++;
    this.structVersion++;
    this.emit('past', null);
  }

  applySnapshot(data) {
    this.epoch++;
    this.stats.snapshots++;
    if (data.resync) this.stats.resyncs++;
    const restarted = this.logSeq !== null && data.seq < this.logSeq;
    this.characters = new Map();
    for (const c of snapshotCharacters(data)) this.characters.set(c.id, c);
    this.locations = data.locations || [];
    this.locById = new Map(this.locations.map((l) => [l.id, l]));
    this.tick = data.tick;
    // The server's clock at the snapshot's tick; the header advances it by later ticks.
    this.clock = data.clock ? { ...data.clock, tick: data.tick } : null;
    this.paused = !!data.paused;
    this.tickRate = data.tick_rate;
    if (data.seed !== undefined) this.seed = data.seed;
    this.seq = data.seq;
    // A resync (history lost, or a reset) or a restarted server: the log cannot be
    // filled in, it continues from here.
    if (this.logSeq === null || data.resync || restarted) this.logSeq = data.seq;
    for (const [f, b] of [...this.pending]) if (b.seq <= this.seq) this.pending.delete(f);
    this.recount();
    this.version++;
    this.structVersion++;
    this.emit('snapshot', data, { restarted });
  }

  /** Another client's (or our own) control change: paused, speed and seed follow it. */
  applyControl({ command, args = {} }) {
    if (command === 'pause') this.paused = true;
    else if (command === 'resume') this.paused = false;
    else if (command === 'set_speed' && typeof args.tick_rate === 'number') this.tickRate = args.tick_rate;
    else if (command === 'reset' && typeof args.seed === 'number') this.seed = args.seed;
  }

  recount() {
    for (const s of STATES) this.counts[s] = 0;
    for (const c of this.characters.values()) this.counts[c.state] = (this.counts[c.state] || 0) + 1;
  }

  applyBatch(msg) {
    const s = msg.seq;
    if (typeof s !== 'number') return;
    // A v1 server sends one broker batch per frame, without `from_seq`.
    const from = typeof msg.from_seq === 'number' ? msg.from_seq : s;
    if (this.seq !== null && s <= this.seq) {
      // Already reflected in our state. If the log has not seen it (batches resumed
      // after a reconnect snapshot), show it there.
      if (this.logSeq !== null && from <= this.logSeq + 1 && s > this.logSeq) {
        this.logSeq = s;
        this.stats.replayed++;
        this.emit('batch', msg.data || [], { replay: true, seq: s });
      } else {
        this.stats.duplicates++;
      }
      return;
    }
    if (this.seq !== null && from > this.seq + 1) {
      // One repair per gap: later batches arriving before it are held with this one.
      if (this.pending.size === 0) {
        this.stats.gaps++;
        this.emit('gap-detected', { from: this.seq + 1, to: from - 1, lastSeq: this.seq });
      }
      this.pending.set(from, msg);
      if (!this.gapTimer) this.gapTimer = setTimeout(() => this.skipGap(), GAP_WAIT_MS);
      return;
    }
    this.applyInOrder(msg);
    this.drain();
  }

  /** Applies held batches that now follow on; drops those the repair made stale. */
  drain() {
    for (const from of [...this.pending.keys()].sort((a, b) => a - b)) {
      const next = this.pending.get(from);
      if (next.seq <= this.seq) this.pending.delete(from);
      else if (from <= this.seq + 1) {
        this.pending.delete(from);
        this.applyInOrder(next);
      } else break;
    }
    if (this.pending.size === 0 && this.gapTimer) {
      clearTimeout(this.gapTimer);
      this.gapTimer = null;
    }
  }

  /** The gap did not fill (the batch is gone): apply what we have, in order. */
  skipGap() {
    this.gapTimer = null;
    if (!this.pending.size) return;
    this.stats.gapsSkipped++;
    const next = Math.min(...this.pending.keys());
    this.emit('gap', { from: this.seq + 1, to: next - 1 });
    this.seq = next - 1;
    if (this.logSeq < this.seq) this.logSeq = this.seq;
    this.drain();
  }

  applyInOrder(msg) {
    this.seq = msg.seq;
    const items = msg.data || [];
    this.stats.batches++;
    this.stats.items += items.length;
    for (const item of items) this.applyItem(item);
    if (items.length) this.version++;
    const forLog = this.logSeq === null || msg.seq > this.logSeq;
    if (forLog) this.logSeq = msg.seq;
    this.emit('batch', items, { replay: false, seq: msg.seq, log: forLog });
  }

  ensure(id, fallback) {
    let c = this.characters.get(id);
    if (!c) {
      c = {
        id,
        name: fallback.name ?? `#${id}`,
        state: fallback.state ?? 'idle',
        location: fallback.location ?? '',
        position: fallback.position ?? this.locById.get(fallback.location)?.position ?? [500, 500],
        needs: fallback.needs ?? { energy: 0, hunger: 0, social: 0 },
        state_since: fallback.tick ?? this.tick ?? 0,
      };
      this.characters.set(id, c);
      this.counts[c.state] = (this.counts[c.state] || 0) + 1;
      this.structVersion++;
    }
    return c;
  }

  setState(c, state) {
    if (c.state === state) return;
    this.counts[c.state]--;
    this.counts[state] = (this.counts[state] || 0) + 1;
    c.state = state;
  }

  applyItem(item) {
    const d = item.data || {};
    if (typeof d.tick === 'number') this.observeTick(d.tick);
    switch (item.type) {
      case 'state_change': {
        const c = this.ensure(d.character_id, { name: d.name, state: d.old_state, location: d.location });
        this.setState(c, d.new_state);
        c.location = d.location;
        c.state_since = d.tick;
        if (d.name) c.name = d.name;
        break;
      }
      case 'character_update': {
        const c = this.ensure(d.character_id, d);
        if (c.state !== d.state) {
          this.setState(c, d.state);
          c.state_since = d.tick;
        }
        c.location = d.location;
        c.position = d.position;
        c.needs = d.needs;
        break;
      }
      case 'event_notification': {
        const data = d.data || {};
        if (d.event_type === 'control') {
          this.applyControl(data);
        } else if (d.event_type === 'character_spawned' && data.character_id !== undefined) {
          this.ensure(data.character_id, { name: data.name, location: data.location, tick: d.tick });
        } else if (d.event_type === 'character_removed' && data.character_id !== undefined) {
          const c = this.characters.get(data.character_id);
          if (c) {
            this.counts[c.state]--;
            this.characters.delete(data.character_id);
            this.structVersion++;
            this.version++;
          }
        }
        break;
      }
      default:
        break;
    }
  }

  /** Ticks only move forward between snapshots (a reset arrives as a snapshot). */
  observeTick(t, epoch = this.epoch) {
    if (epoch !== this.epoch || typeof t !== 'number') return;
    if (this.tick === null || t > this.tick) this.tick = t;
  }

  locationName(id) {
    return this.locById.get(id)?.name ?? id ?? '';
  }
}

/**
 * A snapshot's characters as objects, whichever encoding it came in: the contract's
 * objects, or (asked for with `?snapshot=compact`, docs/protocol.md) rows of the values
 * named by `character_fields`, `needs` as [energy, hunger, social] and a null
 * `destination` for characters not traveling. Always fresh objects the store may change.
 */
export function snapshotCharacters(data) {
  const list = data.characters || [];
  const fields = data.character_fields;
  if (!fields) return list.map((c) => ({ ...c }));
  return list.map((row) => {
    const c = {};
    fields.forEach((field, i) => {
      const v = row[i];
      if (field === 'needs') c.needs = { energy: v[0], hunger: v[1], social: v[2] };
      else if (field === 'destination') { if (v !== null) c.destination = v; }
      else c[field] = v;
    });
    return c;
  });
}
