// The metrics strip. Tick and seq come from the store; ticks/s, batches/s and
// events/s are measured here, client-side, over a sliding 3 s window. Who is watching
// is pushed by the server (presence.js): nothing here is polled.

import { fmtNum, fmtClock, RateMeter } from './util.js';

const SHOW_MS = 250;

export class MetricsStrip {
  constructor(els, store) {
    this.el = els;
    this.store = store;
    this.batches = new RateMeter();
    this.items = new RateMeter();
    this.tickSamples = []; // [timeMs, tick]
    this.lastShow = 0;
    store.on('batch', (items, { replay }) => {
      if (replay) return;
      this.batches.add(1);
      if (items.length) this.items.add(items.length);
    });
    store.on('snapshot', () => { this.tickSamples = []; });
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
    this.el.tick.textContent = store.tick ?? '–';
    this.el.clock.textContent = fmtClock(store.clock, store.tick);
    this.el.tps.textContent = tps === null ? '–' : fmtNum(tps, 1);
    this.el.bps.textContent = fmtNum(this.batches.perSecond(now), 1);
    this.el.eps.textContent = fmtNum(this.items.perSecond(now), 0);
    this.el.charCount.textContent = fmtNum(store.characters.size);
    this.el.seq.textContent = store.seq ?? '–';
  }
}
