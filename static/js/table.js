// The character table: sortable, filterable, virtualized. Only the rows in view (plus
// a margin) exist in the DOM, and the row list is rebuilt at most 4× per second while
// the world changes, so 10 000 characters cost about as much as 40.

import { STATES, stateColor, fmtNum, RenderBudget } from './util.js';

const ROW_H = 28;
const OVERSCAN = 12;
const REBUILD_MS = 250;

const esc = (s) => String(s).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[ch]));

// numeric: "Ada 2" sorts before "Ada 10".
const COLLATOR = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/** Map from each distinct string to its position in collation order. */
function ranks(values) {
  const distinct = [...new Set(values)].sort(COLLATOR.compare);
  return new Map(distinct.map((v, i) => [v, i]));
}

export class CharTable {
  constructor({ scroll, table, tbody, filter, stateSelect, count }, store, { onSelect }) {
    Object.assign(this, { scroll, table, tbody, filter, stateSelect, countEl: count, store, onSelect });
    this.sortKey = 'name';
    this.sortDir = 1;
    this.rows = [];
    this.builtVersion = -1;
    this.budget = new RenderBudget(REBUILD_MS, 0.1);
    this.needsBuild = true;
    this.needsRender = true;
    this.selected = null;
    this.renderedRows = 0;

    for (const s of STATES) stateSelect.append(new Option(s, s));
    filter.addEventListener('input', () => this.invalidate());
    stateSelect.addEventListener('change', () => this.invalidate());
    scroll.addEventListener('scroll', () => { this.needsRender = true; }, { passive: true });
    table.querySelector('thead').addEventListener('click', (e) => {
      const th = e.target.closest('th[data-key]');
      if (!th) return;
      const key = th.dataset.key;
      this.sortDir = this.sortKey === key ? -this.sortDir : 1;
      this.sortKey = key;
      this.updateSortHeaders();
      this.invalidate();
    });
    // mousedown, not click: rows are re-rendered up to 4×/s and a click whose
    // mousedown and mouseup land on different (re-rendered) rows would be lost.
    tbody.addEventListener('mousedown', (e) => {
      if (e.button !== 0) return;
      const tr = e.target.closest('tr[data-id]');
      if (tr) this.onSelect(Number(tr.dataset.id));
    });
    new ResizeObserver(() => { this.needsRender = true; }).observe(scroll);
    this.updateSortHeaders();
  }

  invalidate() {
    this.needsBuild = true;
    this.budget.hurry(); // sort/filter changes show at once
  }

  select(id) {
    this.selected = id;
    this.needsRender = true;
  }

  updateSortHeaders() {
    for (const th of this.table.querySelectorAll('th[data-key]')) {
      if (th.dataset.key === this.sortKey) th.setAttribute('aria-sort', this.sortDir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  /** Called once per animation frame. */
  frame() {
    const changed = this.builtVersion !== this.store.version;
    if ((this.needsBuild || changed) && this.budget.due()) {
      this.budget.run(() => this.build());
      this.needsBuild = false;
      this.needsRender = true;
    }
    if (this.needsRender) {
      this.needsRender = false;
      this.render();
    }
  }

  build() {
    this.builtVersion = this.store.version;
    const q = this.filter.value.trim().toLowerCase();
    const qId = q.replace(/^#/, '');
    const st = this.stateSelect.value;
    const { store } = this;
    let rows = [...store.shown.values()];
    if (st) rows = rows.filter((c) => c.state === st);
    if (q) {
      rows = rows.filter((c) =>
        String(c.id) === qId ||
        c.name.toLowerCase().includes(q) ||
        String(c.location).toLowerCase().includes(q) ||
        store.locationName(c.location).toLowerCase().includes(q));
    }
    // Sort numbers, never strings: string keys become ranks (distinct values sorted
    // once with a Collator). Names rarely change, so their ranks are cached until a
    // character comes or goes; state and location have few distinct values. Sorting
    // 10 000 rows with localeCompare in the comparator costs ~100 ms, this a few.
    const k = this.sortKey;
    const dir = this.sortDir;
    let keyOf;
    if (k === 'energy' || k === 'hunger' || k === 'social') {
      keyOf = (c) => (c.needs ? c.needs[k] : 0);
    } else if (k === 'name') {
      const rank = this.nameRanks();
      keyOf = (c) => rank.get(c.name) ?? 0;
    } else {
      const str = k === 'location' ? (c) => store.locationName(c.location) : (c) => String(c[k]);
      const rank = ranks(rows.map(str));
      keyOf = (c) => rank.get(str(c));
    }
    const keyed = rows.map((c) => ({ c, key: keyOf(c) }));
    keyed.sort((a, b) => (a.key - b.key) * dir || a.c.id - b.c.id);
    rows = keyed.map((x) => x.c);
    this.rows = rows;
    this.updateSortHeaders();
    this.countEl.textContent = rows.length === store.shown.size
      ? `${fmtNum(rows.length)}`
      : `${fmtNum(rows.length)} of ${fmtNum(store.shown.size)}`;
  }

  nameRanks() {
    if (this.nameRankVersion !== this.store.structVersion) {
      this.nameRankVersion = this.store.structVersion;
      this.nameRank = ranks([...this.store.shown.values()].map((c) => c.name));
    }
    return this.nameRank;
  }

  render() {
    const { rows } = this;
    const viewH = this.scroll.clientHeight || 400;
    const first = Math.max(0, Math.floor(this.scroll.scrollTop / ROW_H) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((this.scroll.scrollTop + viewH) / ROW_H) + OVERSCAN);
    const parts = [];
    if (first > 0) parts.push(`<tr class="spacer" aria-hidden="true"><td colspan="6" style="height:${first * ROW_H}px"></td></tr>`);
    for (let i = first; i < last; i++) parts.push(this.rowHtml(rows[i]));
    if (last < rows.length) parts.push(`<tr class="spacer" aria-hidden="true"><td colspan="6" style="height:${(rows.length - last) * ROW_H}px"></td></tr>`);
    if (!rows.length) {
      parts.push(`<tr><td colspan="6" class="muted">${this.store.shown.size ? 'No character matches the filter.' : 'Waiting for the world…'}</td></tr>`);
    }
    this.tbody.innerHTML = parts.join('');
    this.renderedRows = last - first;
  }

  rowHtml(c) {
    const needs = c.needs || {};
    const need = (k) => {
      const v = Math.max(0, Math.min(100, needs[k] ?? 0));
      return `<td class="num"><span class="need">${Math.round(v)}<i><b style="width:${v}%;background:var(--need-${k})"></b></i></span></td>`;
    };
    return `<tr class="row${c.id === this.selected ? ' selected' : ''}" data-id="${c.id}" data-testid="char-row">`
      + `<td title="${esc(c.name)} (#${c.id})">${esc(c.name)}<span class="id">#${c.id}</span></td>`
      + `<td><span class="badge" style="--c:${stateColor(c.state)}">${esc(c.state)}</span></td>`
      + `<td>${esc(this.store.locationName(c.location))}</td>`
      + need('energy') + need('hunger') + need('social')
      + '</tr>';
  }
}
