// The audit panel (operators only): who ran which operator command, when, and whether
// it worked, from the server's `audit` command (kept across restarts). It asks on
// every (re)connect, on Refresh, and shortly after anything that may have added an
// entry — a control item from anyone, or a command from this page — at most once per
// REFRESH_MS, as a background command so it never crowds out what the person types.

import { throttle } from './util.js';

const REFRESH_MS = 2000;
const LIMIT = 100;

const two = (n) => String(n).padStart(2, '0');

/** One entry as a line of text: "14:03:07 · tick 120 · alice set_speed {"tick_rate":5}". */
export function describeEntry(e) {
  const d = new Date(e.timestamp * 1000);
  const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  const args = e.args && Object.keys(e.args).length ? ` ${JSON.stringify(e.args)}` : '';
  return `${time} · tick ${e.tick} · ${e.by} ${e.command}${args}${e.ok ? '' : ` — failed: ${e.error ?? 'refused'}`}`;
}

export class AuditPanel {
  constructor({ list, refresh, count }, store, { run }) {
    Object.assign(this, { list, count, store, run });
    this.enabled = false;
    this.entries = [];
    this.failures = 0;
    this.soon = throttle(() => this.load(), REFRESH_MS);
    refresh.addEventListener('click', () => this.load());
    store.on('welcome', () => {
      if (this.enabled) this.soon();
    });
    store.on('batch', (items) => {
      if (this.enabled && items.some((i) => i.type === 'event_notification' && i.data?.event_type === 'control')) this.soon();
    });
  }

  /** Called once the server says this page is an operator's. */
  enable() {
    if (this.enabled) return;
    this.enabled = true;
    this.soon();
  }

  async load() {
    if (!this.enabled) return;
    try {
      const data = await this.run('audit', { limit: LIMIT }, { background: true, quiet: true });
      this.failures = 0;
      this.render(data.entries || []);
    } catch (e) {
      // Shown in the panel rather than as a toast: it is a background refresh.
      if (++this.failures === 1) this.count.textContent = `not available: ${e.message}`;
    }
  }

  render(entries) {
    this.entries = entries;
    const stick = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 4;
    const rows = entries.map((e) => {
      const li = document.createElement('li');
      li.dataset.testid = 'audit-entry';
      li.className = e.ok ? 'ok' : 'failed';
      li.textContent = describeEntry(e);
      if (!e.ok && e.error) li.title = e.error;
      return li;
    });
    this.list.replaceChildren(...rows);
    this.count.textContent = entries.length ? `last ${entries.length}` : 'nothing yet';
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }
}
