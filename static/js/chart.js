// Population by state over time: a stacked area chart on a canvas. One sample per
// observed tick (so a paused world draws a flat, still chart rather than a
// stretching one); the last 400 samples are kept.

import { STATES, palette } from './util.js';

const MAX_SAMPLES = 400;

export class PopulationChart {
  constructor({ canvas, range: rangeLabel }, store) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.rangeLabel = rangeLabel;
    this.store = store;
    this.samples = []; // {tick, counts: number[]}
    this.dirty = true;
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
    this.resize();
    // A new world (reset, or another server) starts a new history.
    store.on('snapshot', (data, { restarted }) => {
      const last = this.samples[this.samples.length - 1];
      if (data.resync || restarted || (last && data.tick < last.tick)) this.samples = [];
    });
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    this.w = this.canvas.parentElement.clientWidth;
    this.h = this.canvas.parentElement.clientHeight;
    this.canvas.width = Math.max(1, Math.round(this.w * dpr));
    this.canvas.height = Math.max(1, Math.round(this.h * dpr));
    this.dpr = dpr;
    this.dirty = true;
  }

  /** Called once per animation frame: samples when the tick moved, draws when needed. */
  frame() {
    const { tick } = this.store;
    if (tick !== null && this.store.characters.size) {
      const last = this.samples[this.samples.length - 1];
      const counts = STATES.map((s) => this.store.counts[s] || 0);
      if (!last || tick > last.tick) {
        this.samples.push({ tick, counts });
        if (this.samples.length > MAX_SAMPLES) this.samples.shift();
        this.dirty = true;
      } else if (tick === last.tick && counts.some((v, i) => v !== last.counts[i])) {
        last.counts = counts; // e.g. set_state while paused
        this.dirty = true;
      }
    }
    if (this.dirty) {
      this.dirty = false;
      this.draw();
    }
  }

  draw() {
    const { ctx, w, h, samples } = this;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const left = 40;
    const right = 10;
    const top = 8;
    const bottom = 20;
    const pw = w - left - right;
    const ph = h - top - bottom;
    if (pw <= 0 || ph <= 0) return;
    const total = Math.max(1, ...samples.map((s) => s.counts.reduce((a, b) => a + b, 0)));
    // Axes and gridlines at 0, 25, 50, 75, 100 % of the population.
    const pal = palette();
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = pal.chartText;
    ctx.strokeStyle = pal.chartGrid;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(top + ph - (ph * i) / 4) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + pw, y);
      ctx.stroke();
      ctx.fillText(String(Math.round((total * i) / 4)), left - 6, y);
    }
    if (samples.length < 2) {
      ctx.textAlign = 'center';
      ctx.fillText('waiting for ticks…', left + pw / 2, top + ph / 2);
      this.rangeLabel.textContent = '';
      return;
    }
    const t0 = samples[0].tick;
    const t1 = samples[samples.length - 1].tick;
    const span = Math.max(1, t1 - t0);
    const xOf = (t) => left + ((t - t0) / span) * pw;
    const yOf = (v) => top + ph - (v / total) * ph;
    // Stacked areas, bottom state first.
    const base = new Array(samples.length).fill(0);
    STATES.forEach((state, si) => {
      ctx.beginPath();
      samples.forEach((s, i) => {
        const x = xOf(s.tick);
        const y = yOf(base[i] + s.counts[si]);
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      for (let i = samples.length - 1; i >= 0; i--) ctx.lineTo(xOf(samples[i].tick), yOf(base[i]));
      ctx.closePath();
      ctx.fillStyle = pal.state[state];
      ctx.globalAlpha = 0.8;
      ctx.fill();
      ctx.globalAlpha = 1;
      samples.forEach((s, i) => {
        base[i] += s.counts[si];
      });
    });
    ctx.fillStyle = pal.chartText;
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    ctx.fillText(`tick ${t0}`, left, top + ph + 5);
    ctx.textAlign = 'right';
    ctx.fillText(`tick ${t1}`, left + pw, top + ph + 5);
    this.rangeLabel.textContent = `last ${span} ticks`;
  }
}
