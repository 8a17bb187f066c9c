// Operator controls: pause/resume, step, tick rate, seed and reset, schedule. Each
// button runs one command through `run` (which updates the store from the reply and
// reports errors); buttons are disabled while their command is in flight.

// The slider is logarithmic: 0..1000 maps to the server's tick-rate bounds
// (`welcome.data.limits.tick_rate`), so both "slow enough to watch one character" and
// "fast-forward a day" are a short drag away.
export const toRate = (p, { min, max }) => {
  const r = min * (max / min) ** (p / 1000);
  const rounded = r < 10 ? Math.round(r * 10) / 10 : Math.round(r);
  return Math.max(min, Math.min(max, rounded));
};
export const toPos = (r, { min, max }) => Math.round((1000 * Math.log(Math.max(min, Math.min(max, r)) / min)) / Math.log(max / min));
const fmtRate = (r) => (r === null || r === undefined ? '–' : `${r < 10 ? r.toFixed(1) : Math.round(r)} ticks/s`);

export class Controls {
  /** els: the controls' elements (buttons by what they do, inputs by id in camelCase). */
  constructor(els, store, { run, notify }) {
    this.el = els;
    this.store = store;
    this.run = run;
    this.notify = notify;
    this.shownPaused = null;
    this.shownRate = null;
    this.shownSeed = null;
    this.dragging = false;
    this.rates = null; // limits.tick_rate, from welcome
    this.steps = null; // limits.step_ticks, from welcome
    store.on('welcome', ({ limits }) => this.applyLimits(limits));

    this.el.pause.addEventListener('click', () => this.busy(this.el.pause, () => this.run(this.store.paused ? 'resume' : 'pause', {})));
    this.el.step.addEventListener('click', () => {
      const n = Number(this.el.stepN.value);
      const { min, max } = this.steps ?? {};
      if (!Number.isInteger(n) || !(n >= min && n <= max)) {
        this.notify(`Step: N must be a whole number from ${min} to ${max}`, 'error');
        return;
      }
      this.busy(this.el.step, () => this.run('step', { ticks: n }));
    });
    this.el.stepN.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') this.el.step.click();
    });

    const range = this.el.speedRange;
    range.addEventListener('input', () => {
      this.dragging = true;
      if (this.rates) this.el.speedValue.textContent = fmtRate(toRate(Number(range.value), this.rates));
    });
    range.addEventListener('change', async () => {
      this.dragging = false;
      if (!this.rates) return;
      const rate = toRate(Number(range.value), this.rates);
      try {
        await this.run('set_speed', { tick_rate: rate });
      } catch {
        /* reported by run */
      }
    });

    this.el.copySeed.addEventListener('click', () => this.copySeed());

    let armTimer = null;
    this.el.reset.addEventListener('click', () => {
      const btn = this.el.reset;
      const raw = this.el.resetSeed.value.trim();
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
      this.busy(this.el.reset, async () => {
        const data = await this.run('reset', raw ? { seed: Number(raw) } : {});
        this.notify(`World reset with seed ${data.seed}`, 'ok');
      });
    });

    this.el.schedule.addEventListener('click', () => {
      const type = this.el.schedType.value.trim() || this.el.schedType.placeholder;
      const inTicks = Number(this.el.schedIn.value);
      const raw = this.el.schedData.value.trim();
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
      this.busy(this.el.schedule, async () => {
        const data = await this.run('schedule', args);
        this.notify(`Scheduled ${type} #${data.event_id}, due at tick ${data.due_tick}`, 'ok');
      });
    });
  }

  /** The server's bounds for `step` and `set_speed` (welcome.data.limits). */
  applyLimits(limits) {
    if (!limits) return;
    this.rates = limits.tick_rate;
    this.steps = limits.step_ticks;
    const step = this.el.stepN;
    if (!step.isConnected) return; // a viewer's page has no controls
    step.min = String(this.steps.min);
    step.max = String(this.steps.max);
    const range = this.el.speedRange;
    range.title = `${fmtRate(this.rates.min)} to ${fmtRate(this.rates.max)}`;
    range.dataset.min = String(this.rates.min);
    range.dataset.max = String(this.rates.max);
    this.shownRate = null; // re-place the thumb on the new scale
  }

  async busy(btn, fn) {
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
      r.selectNodeContents(this.el.seed);
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
      const b = this.el.pause;
      b.textContent = paused ? 'Resume' : 'Pause';
      b.dataset.paused = String(paused);
    }
    if (tickRate !== this.shownRate && !this.dragging && this.rates) {
      this.shownRate = tickRate;
      if (tickRate !== null) this.el.speedRange.value = String(toPos(tickRate, this.rates));
      this.el.speedValue.textContent = fmtRate(tickRate);
    }
    if (seed !== this.shownSeed) {
      this.shownSeed = seed;
      this.el.seed.textContent = seed ?? '–';
    }
  }
}
