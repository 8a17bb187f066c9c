// The inspector: one character in detail. Needs and state come live from the store
// (redrawn per frame when they change); recent transitions and the travel plan come
// from the `inspect` command, re-asked when a state_change for this character arrives
// (throttled to one request per second: a busy character must not eat the message
// budget).

import { STATES, stateColor, fmtTicks, throttle } from './util.js';
import { errorText } from './toast.js';

export class Inspector {
  /** els: the inspector's elements (#insp-*), by the id's last part in camelCase. */
  constructor(els, store, { run, notify, onSelect, isLive }) {
    Object.assign(this, { el: els, store, run, notify, onSelect, isLive });
    this.id = null;
    this.detail = null; // last inspect reply
    this.detailEpoch = -1;
    this.lastKey = '';
    this.requests = 0;
    this.refresh = throttle(() => this.fetch(), 1000);

    const sel = this.el.setState;
    for (const s of STATES) sel.append(new Option(s, s));
    this.el.setBtn.addEventListener('click', () => this.setState());

    store.on('batch', (items) => {
      if (this.id === null) return;
      for (const it of items) {
        if (it.type === 'state_change' && it.data.character_id === this.id) {
          this.refresh();
          break;
        }
      }
    });
    store.on('snapshot', () => {
      if (this.id !== null) this.refresh();
    });
  }

  select(id) {
    this.id = id;
    this.detail = null;
    this.lastKey = '';
    this.el.empty.hidden = true;
    this.el.body.hidden = false;
    this.el.set.hidden = false; // detached for a viewer: harmless
    this.el.transitions.textContent = '';
    const c = this.store.shown.get(id);
    // Preselect the current state once; never while the person is choosing.
    const sel = this.el.setState; // detached for a viewer
    if (c && sel) sel.value = c.state;
    this.fetch();
  }

  async fetch() {
    const id = this.id;
    if (id === null) return;
    // While disconnected there is nobody to ask; the snapshot that comes with the
    // reconnect triggers a refresh.
    if (!this.isLive()) return;
    const epoch = this.store.epoch;
    this.requests++;
    try {
      const data = await this.run('inspect', { character_id: id }, { background: true, quiet: true });
      if (id !== this.id) return;
      this.detail = data;
      this.detailEpoch = epoch;
      this.renderTransitions();
      this.lastKey = '';
    } catch (e) {
      if (id !== this.id || !this.isLive()) return; // the connection dropped meanwhile
      this.notify(`inspect ${id}: ${errorText(e)}`, 'error');
    }
  }

  async setState() {
    if (this.id === null) return;
    const state = this.el.setState.value;
    const id = this.id;
    try {
      await this.run('set_state', { character_id: id, state });
      this.notify(`#${id} is now ${state}`, 'ok');
      this.fetch();
    } catch {
      /* reported by run */
    }
  }

  renderTransitions() {
    const list = this.el.transitions;
    list.textContent = '';
    const tr = this.detail?.recent_transitions || [];
    if (!tr.length) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = 'none yet';
      list.append(li);
      return;
    }
    // Newest first: the one the person just caused is the one they look for.
    for (const t of [...tr].reverse()) {
      const li = document.createElement('li');
      li.dataset.to = t.to;
      const tick = document.createElement('span');
      tick.className = 't';
      tick.textContent = t.tick;
      const what = document.createElement('span');
      what.innerHTML = '';
      const to = document.createElement('b');
      to.textContent = t.to;
      to.style.color = `var(--st-${t.to})`;
      what.append(`${t.from} → `, to, ` at ${this.store.locationName(t.location)}`);
      li.append(tick, what);
      list.append(li);
    }
  }

  /** Called once per animation frame; touches the DOM only when something shown changed. */
  frame() {
    if (this.id === null) return;
    const c = this.store.shown.get(this.id);
    const tick = this.store.tick ?? 0;
    if (!c) {
      const key = 'gone';
      if (this.lastKey !== key) {
        this.lastKey = key;
        this.el.name.textContent = `#${this.id}`;
        this.el.state.textContent = 'no longer in the world';
        this.el.state.dataset.state = '';
      }
      return;
    }
    const n = c.needs || {};
    const since = c.state_since ?? tick;
    const key = [c.name, c.state, c.location, since, tick, n.energy, n.hunger, n.social, this.detail ? 1 : 0].join('|');
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.el.id.textContent = `#${c.id}`;
    this.el.name.textContent = c.name;
    const st = this.el.state;
    st.textContent = c.state;
    st.dataset.state = c.state;
    st.style.setProperty('--c', stateColor(c.state));
    this.el.time.textContent = `${fmtTicks(Math.max(0, tick - since))} (since tick ${since})`;
    const dest = c.state === 'traveling' && (c.destination || this.detail?.destination);
    this.el.location.textContent = this.store.locationName(c.location) + (dest ? ` → ${this.store.locationName(dest)}` : '');
    // "eating at market" → "eating at Market"
    const plan = this.detail?.pending_plan;
    this.el.plan.textContent = plan ? plan.replace(/ at (\S+)$/, (_, id) => ` at ${this.store.locationName(id)}`) : '—';
    const home = c.home ?? this.detail?.home;
    const work = c.workplace ?? this.detail?.workplace;
    this.el.homework.textContent = home ? `${this.store.locationName(home)} · ${this.store.locationName(work)}` : '—';
    const needs = this.el.needs;
    if (!needs.childElementCount) {
      for (const k of ['energy', 'hunger', 'social']) {
        const label = document.createElement('span');
        label.textContent = k;
        const bar = document.createElement('div');
        bar.className = 'bar';
        bar.innerHTML = `<b style="background:var(--need-${k})"></b>`;
        bar.dataset.need = k;
        const v = document.createElement('span');
        v.className = 'v';
        v.dataset.needValue = k;
        needs.append(label, bar, v);
      }
    }
    for (const k of ['energy', 'hunger', 'social']) {
      const v = Math.max(0, Math.min(100, n[k] ?? 0));
      needs.querySelector(`[data-need=${k}] b`).style.width = `${v}%`;
      needs.querySelector(`[data-need-value=${k}]`).textContent = Math.round(v);
    }
  }
}
