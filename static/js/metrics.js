// The metrics strip. Tick and seq come from the store; ticks/s, batches/s and
// events/s are measured here, client-side, over a sliding 3 s window; "watching" is
// the server's connections_active from the `metrics` command, polled every 2 s.

import { $, fmtNum, fmtClock, RateMeter } from './util.js';

const POLL_MS = 2000;
const SHOW_MS = 250;

export class MetricsStrip {
  constructor(store, transport, { notify }) {
    this.store = store;
    this.transport = transport;
    this.notify = notify;
    this.batches = new RateMeter();
    this.items = new RateMeter();
    this.tickSamples = []; // [timeMs, tick]
    this.clients = null;
    this.lastShow = 0;
    this.pollFailures = 0;
    store.on('batch', (items, { replay }) => {
      if (replay) return;
      this.batches.add(1);
      if (items.length) this.items.add(items.length);
    });
    store.on('snapshot', () => { this.tickSamples = []; });
    // Ask right away on every (re)connect rather than up to 2 s later.
    store.on('welcome', () => setTimeout(() => this.poll(), 100));
    setInterval(() => this.poll(), POLL_MS);
  }

  async poll() {
    if (!this.transport.live) return;
    const epoch = this.store.epoch;
    try {
      const m = await this.transport.command('metrics', {}, { background: true });
      this.clients = m.connections_active ?? m.pool?.active ?? null;
      this.store.observeTick(m.tick, epoch);
      this.pollFailures = 0;
    } catch (e) {
      // One miss is noise (a reconnect in progress); a run of them is worth saying.
      if (++this.pollFailures === 3) this.notify(`metrics poll failing: ${e.message}`, 'error');
    }
  }

  ticksPerSecond(now) {
    const t = this.store.tick;
    if (t === null) return null;
    const s = this.tickSamples;
    if (!s.length || s[s.length - 1][1] !== t) s.push([now, t]);
    while (s.length > 1 && now - s[0][0] > 3000) s.shift();
    const span = (now - s[0][0]) / 1000;
    if (span < 0.5) return s.length > 1 ? null : 0;
    return (t - s[0][1]) / Math.max(span, 1);
  }

  frame() {
    const now = performance.now();
    const tps = this.ticksPerSecond(now);
    if (now - this.lastShow < SHOW_MS) return;
    this.lastShow = now;
    const { store } = this;
    $('tick').textContent = store.tick ?? '–';
    $('clock').textContent = fmtClock(store.clock, store.tick);
    $('tps').textContent = tps === null ? '–' : fmtNum(tps, 1);
    $('clients').textContent = this.clients ?? '–';
    $('bps').textContent = fmtNum(this.batches.perSecond(now), 1);
    $('eps').textContent = fmtNum(this.items.perSecond(now), 0);
    $('char-count').textContent = fmtNum(store.characters.size);
    $('seq').textContent = store.seq ?? '–';
  }
}
