// The event log: state changes and event notifications, newest at the bottom,
// filterable by type and by character.
//
// Auto-scroll stops while the person has scrolled up to read: new entries are then
// only counted ("↓ 12 new events"), the DOM is left alone so nothing jumps under
// their eyes, and scrolling back to the bottom (or the button) catches up.

import { describeControl, fmtNum, RenderBudget } from './util.js';

const MAX_ENTRIES = 5000; // kept in memory, for re-filtering
const MAX_ROWS = 250; // in the DOM
const AT_BOTTOM_PX = 24;
const FLUSH_MS = 200;

export class EventLog {
  constructor({ list, jump, typeSelect, charInput }, store, { onSelect }) {
    Object.assign(this, { list, jump, typeSelect, charInput, store, onSelect });
    this.entries = [];
    this.queue = []; // entries not yet in the DOM
    this.unseen = 0;
    this.follow = true;
    this.knownTypes = new Set();
    this.total = 0;
    this.budget = new RenderBudget(FLUSH_MS, 0.1);

    store.on('batch', (items, { replay, log }) => {
      if (replay || log !== false) this.addItems(items, replay);
    });
    store.on('snapshot', (data, { restarted }) => {
      if (data.resync) this.note(`World ${restarted ? 'restarted' : 'resynced'} at tick ${data.tick} (seed ${data.seed}); state replaced.`);
      else if (restarted) this.note(`Server restarted; continuing from tick ${data.tick}.`);
    });
    store.on('gap', ({ from, to }) => this.note(`Batches ${from}–${to} were lost; some events are missing.`));

    list.addEventListener('scroll', () => {
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < AT_BOTTOM_PX;
      if (atBottom && !this.follow) {
        this.follow = true;
        this.rerender();
      } else if (!atBottom && this.follow) {
        this.follow = false;
      }
    }, { passive: true });
    jump.addEventListener('click', () => {
      this.follow = true;
      this.rerender();
    });
    typeSelect.addEventListener('change', () => this.rerender());
    charInput.addEventListener('input', () => this.rerender());
    list.addEventListener('click', (e) => {
      const who = e.target.closest('[data-char]');
      if (who) this.onSelect(Number(who.dataset.char));
    });
  }

  note(text) {
    this.push({ tick: this.store.tick, type: 'note', chars: [], parts: [{ t: text, cls: 'note' }] });
  }

  addItems(items, replay) {
    for (const item of items) {
      const e = this.entryOf(item);
      if (!e) continue;
      e.replay = replay;
      this.push(e);
    }
  }

  push(e) {
    this.total++;
    this.entries.push(e);
    if (this.entries.length > MAX_ENTRIES) this.entries.splice(0, this.entries.length - MAX_ENTRIES);
    if (this.matches(e)) {
      this.queue.push(e);
      // Only the newest MAX_ROWS can ever be shown; keep the count for the badge.
      if (this.queue.length > 2 * MAX_ROWS) {
        const drop = this.queue.length - MAX_ROWS;
        if (!this.follow) this.unseen += drop;
        this.queue.splice(0, drop);
      }
    }
  }

  nameOf(id, fallback) {
    return this.store.characters.get(id)?.name ?? fallback ?? `#${id}`;
  }

  /** A log entry: a list of text parts, some of them character links. */
  entryOf(item) {
    const d = item.data || {};
    const place = (id) => ({ t: this.store.locationName(id) });
    const who = (id, name) => ({ t: this.nameOf(id, name), char: id });
    if (item.type === 'state_change') {
      return {
        tick: d.tick,
        type: 'state_change',
        chars: [d.character_id],
        parts: [who(d.character_id, d.name), { t: `: ${d.old_state} → ` }, { t: d.new_state, state: d.new_state }, { t: ' at ' }, place(d.location)],
      };
    }
    if (item.type === 'event_notification') {
      const data = d.data || {};
      const t = d.event_type;
      if (!this.knownTypes.has(t)) this.addType(t);
      const base = { tick: d.tick, type: `event:${t}`, chars: [] };
      if (t === 'characters_met' && Array.isArray(data.characters) && data.characters.length === 2) {
        const [a, b] = data.characters;
        return { ...base, chars: [a, b], parts: [{ t: 'met ', cls: 'ev' }, who(a), { t: ' and ' }, who(b), { t: ' at ' }, place(data.location)] };
      }
      if (t === 'control') {
        return { ...base, parts: [{ t: describeControl(data), cls: 'ev' }] };
      }
      if (t === 'shift_ended') {
        return { ...base, chars: [data.character_id], parts: [{ t: 'shift ended ', cls: 'ev' }, who(data.character_id), { t: ' at ' }, place(data.workplace)] };
      }
      if (t === 'character_spawned' || t === 'character_removed') {
        return { ...base, chars: [data.character_id], parts: [{ t: `${t === 'character_spawned' ? 'spawned' : 'removed'} `, cls: 'ev' }, who(data.character_id, data.name), { t: ' at ' }, place(data.location)] };
      }
      const ids = [data.character_id, ...(Array.isArray(data.characters) ? data.characters : [])].filter((x) => typeof x === 'number');
      const json = JSON.stringify(data);
      return {
        ...base,
        chars: ids,
        parts: [{ t: t, cls: 'ev' }, { t: d.event_id !== undefined ? ` #${d.event_id}` : '' }, { t: json && json !== '{}' ? ` ${json}` : '' }],
      };
    }
    return null; // character_update: too many, and shown on the map instead
  }

  addType(t) {
    this.knownTypes.add(t);
    const opt = new Option(`event: ${t}`, `event:${t}`);
    this.typeSelect.append(opt);
  }

  matches(e) {
    if (e.type === 'note') return true;
    const type = this.typeSelect.value;
    if (type === 'state_change' && e.type !== 'state_change') return false;
    if (type === 'event' && !e.type.startsWith('event:')) return false;
    if (type.startsWith('event:') && e.type !== type) return false;
    const q = this.charInput.value.trim().toLowerCase();
    if (!q) return true;
    const qId = q.replace(/^#/, '');
    return e.chars.some((id) => String(id) === qId || this.nameOf(id).toLowerCase().includes(q));
  }

  rerender() {
    this.list.textContent = '';
    this.queue = [];
    const matching = [];
    for (let i = this.entries.length - 1; i >= 0 && matching.length < MAX_ROWS; i--) {
      if (this.matches(this.entries[i])) matching.push(this.entries[i]);
    }
    matching.reverse();
    this.appendRows(matching);
    this.unseen = 0;
    this.follow = true;
    this.list.scrollTop = this.list.scrollHeight;
    this.jump.hidden = true;
  }

  rowOf(e) {
    const li = document.createElement('li');
    if (e.replay) {
      li.className = 'replay';
      li.title = 'delivered after a reconnect (resume)';
    }
    li.dataset.type = e.type;
    const t = document.createElement('span');
    t.className = 't';
    t.textContent = e.tick ?? '';
    const body = document.createElement('span');
    for (const p of e.parts) {
      const s = document.createElement('span');
      s.textContent = p.t;
      if (p.cls) s.className = p.cls;
      if (p.char !== undefined) {
        s.className = 'who';
        s.dataset.char = p.char;
      }
      if (p.state) s.style.color = `var(--st-${p.state}, inherit)`;
      body.append(s);
    }
    li.append(t, body);
    return li;
  }

  appendRows(entries) {
    const frag = document.createDocumentFragment();
    for (const e of entries.slice(-MAX_ROWS)) frag.append(this.rowOf(e));
    this.list.append(frag);
    let excess = this.list.childElementCount - MAX_ROWS;
    while (excess-- > 0) this.list.firstElementChild.remove();
  }

  /**
   * Called once per animation frame; touches the DOM at most every FLUSH_MS (longer
   * when a flush is expensive). A busy town produces thousands of entries a second:
   * appending them every frame would re-layout the list 60× a second for text nobody
   * can read that fast.
   */
  frame() {
    if (!this.queue.length || !this.budget.due()) return;
    if (this.follow) {
      this.budget.run(() => {
        if (this.queue.length >= MAX_ROWS) this.list.textContent = ''; // all rows replaced anyway
        this.appendRows(this.queue);
        this.queue = [];
        this.list.scrollTop = this.list.scrollHeight;
      });
    } else {
      this.unseen += this.queue.length;
      this.queue = [];
      this.jump.hidden = false;
      this.jump.textContent = `↓ ${fmtNum(this.unseen)} new event${this.unseen === 1 ? '' : 's'}`;
    }
  }

  get rowCount() {
    return this.list.childElementCount;
  }
}
