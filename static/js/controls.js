// Operator controls: pause/resume, step, tick rate, seed and reset, schedule. Each
// button runs one command through `run` (which updates the store from the reply and
// reports errors); buttons are disabled while their command is in flight.

import { $ } from './util.js';

// The slider is logarithmic: 0..1000 maps to 0.5..500 ticks/s, so both "slow enough
// to watch one character" and "fast-forward a day" are a short drag away.
const MIN_RATE = 0.5;
const MAX_RATE = 500;
const toRate = (p) => {
  const r = MIN_RATE * (MAX_RATE / MIN_RATE) ** (p / 1000);
  return r < 10 ? Math.round(r * 10) / 10 : Math.round(r);
};
const toPos = (r) => Math.round((1000 * Math.log(Math.max(MIN_RATE, Math.min(MAX_RATE, r)) / MIN_RATE)) / Math.log(MAX_RATE / MIN_RATE));
const fmtRate = (r) => (r === null || r === undefined ? '–' : `${r < 10 ? r.toFixed(1) : Math.round(r)} ticks/s`);

export class Controls {
  constructor(store, { run, notify }) {
    this.store = store;
    this.run = run;
    this.notify = notify;
    this.shownPaused = null;
    this.shownRate = null;
    this.shownSeed = null;
    this.dragging = false;

    $('btn-pause').addEventListener('click', () => this.busy('btn-pause', () => this.run(this.store.paused ? 'resume' : 'pause', {})));
    $('btn-step').addEventListener('click', () => {
      const n = Number($('step-n').value);
      if (!Number.isInteger(n) || n < 1 || n > 10000) {
        this.notify('Step: N must be a whole number from 1 to 10000', 'error');
        return;
      }
      this.busy('btn-step', () => this.run('step', { ticks: n }));
    });
    $('step-n').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') $('btn-step').click();
    });

    const range = $('speed-range');
    range.addEventListener('input', () => {
      this.dragging = true;
      $('speed-value').textContent = fmtRate(toRate(Number(range.value)));
    });
    range.addEventListener('change', async () => {
      this.dragging = false;
      const rate = toRate(Number(range.value));
      try {
        await this.run('set_speed', { tick_rate: rate });
      } catch {
        /* reported by run */
      }
    });

    $('btn-copy-seed').addEventListener('click', () => this.copySeed());

    let armTimer = null;
    $('btn-reset').addEventListener('click', () => {
      const btn = $('btn-reset');
      const raw = $('reset-seed').value.trim();
      if (raw && !/^\d+$/.test(raw)) {
        this.notify('Reset: the seed must be a whole number (or empty for the current seed)', 'error');
        return;
      }
      // Two clicks: a reset throws the whole world away.
      if (!btn.classList.contains('armed')) {
        btn.classList.add('armed');
        btn.textContent = 'Confirm reset';
        armTimer = setTimeout(() => {
          btn.classList.remove('armed');
          btn.textContent = 'Reset';
        }, 3000);
        return;
      }
      clearTimeout(armTimer);
      btn.classList.remove('armed');
      btn.textContent = 'Reset';
      this.busy('btn-reset', async () => {
        const data = await this.run('reset', raw ? { seed: Number(raw) } : {});
        this.notify(`World reset with seed ${data.seed}`, 'ok');
      });
    });

    $('btn-schedule').addEventListener('click', () => {
      const type = $('sched-type').value.trim() || $('sched-type').placeholder;
      const inTicks = Number($('sched-in').value);
      const raw = $('sched-data').value.trim();
      if (!Number.isInteger(inTicks) || inTicks < 0) {
        this.notify('Schedule: "in" must be a whole number of ticks', 'error');
        return;
      }
      const args = { event_type: type, in_ticks: inTicks };
      if (raw) {
        try {
          args.data = JSON.parse(raw);
        } catch (e) {
          this.notify(`Schedule: data is not valid JSON (${e.message})`, 'error');
          return;
        }
      }
      this.busy('btn-schedule', async () => {
        const data = await this.run('schedule', args);
        this.notify(`Scheduled ${type} #${data.event_id}, due at tick ${data.due_tick}`, 'ok');
      });
    });
  }

  async busy(id, fn) {
    const btn = $(id);
    btn.disabled = true;
    try {
      await fn();
    } catch {
      /* run() already showed it */
    } finally {
      btn.disabled = false;
    }
  }

  async copySeed() {
    const seed = String(this.store.seed ?? '');
    try {
      await navigator.clipboard.writeText(seed);
      this.notify(`Seed ${seed} copied`, 'ok');
    } catch {
      // No clipboard permission (plain http on a LAN address): select it instead.
      const r = document.createRange();
      r.selectNodeContents($('seed'));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
      this.notify('Seed selected: press Ctrl+C to copy', 'info');
    }
  }

  /** Called once per animation frame: mirrors store values into the controls. */
  frame() {
    const { paused, tickRate, seed } = this.store;
    if (paused !== this.shownPaused) {
      this.shownPaused = paused;
      const b = $('btn-pause');
      b.textContent = paused ? 'Resume' : 'Pause';
      b.dataset.paused = String(paused);
    }
    if (tickRate !== this.shownRate && !this.dragging) {
      this.shownRate = tickRate;
      if (tickRate !== null) $('speed-range').value = String(toPos(tickRate));
      $('speed-value').textContent = fmtRate(tickRate);
    }
    if (seed !== this.shownSeed) {
      this.shownSeed = seed;
      $('seed').textContent = seed ?? '–';
    }
  }
}
