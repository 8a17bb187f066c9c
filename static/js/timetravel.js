// The timeline strip: a scrubber over the retained past (the server's `timeline`),
// `view_at` of the tick it is dragged to (the map, the table and the inspector then
// show that tick while the live world goes on: `store.viewPast`), a banner that says so
// with a way back, a rewind button for operators, and the CSV download of the time
// series. The range and every past world come from the server; nothing is derived here.

const REFRESH_MS = 3000;
const SETTLE_MS = 120;

export class TimeTravel {
  constructor(el, store, { run, token }) {
    this.el = el;
    this.store = store;
    this.run = run;
    this.range = { oldest: 0, newest: 0 };
    this.timer = null;
    /** Drags so far, and whether the last one has not shown its tick yet. */
    this.drags = 0;
    this.dragging = false;
    el.scrub.addEventListener('input', () => this.dragged());
    el.live.addEventListener('click', () => this.backToLive());
    el.rewind?.addEventListener('click', () => this.rewind());
    el.csv.href = `/api/timeseries?format=csv&token=${encodeURIComponent(token)}`;
    store.on('past', (past) => this.show(past));
    store.on('snapshot', (data) => { if (data.resync) this.backToLive(); });
    this.refresh();
    setInterval(() => this.refresh(), REFRESH_MS);
  }

  /** The retained range, from the server; the scrubber follows the newest tick. */
  async refresh() {
    try {
      const r = await this.run('timeline', {}, { quiet: true, background: true });
      this.range = { oldest: r.oldest_tick, newest: r.newest_tick };
      this.el.scrub.min = String(r.oldest_tick);
      this.el.scrub.max = String(r.newest_tick);
      if (!this.store.past && !this.dragging) this.el.scrub.value = String(r.newest_tick);
      this.el.rangeLabel.textContent = `ticks ${r.oldest_tick}–${r.newest_tick}`;
    } catch { /* offline for now: the next refresh tries again */ }
  }

  /**
   * A drag settles for SETTLE_MS, then shows the tick it stopped at. Until that tick's
   * `view_at` has answered, a refresh must not move the scrubber back to the newest
   * tick: it would snap a person's drag back to live (and did, now and then, in the
   * browser test).
   */
  dragged() {
    clearTimeout(this.timer);
    const drag = ++this.drags;
    this.dragging = true;
    this.timer = setTimeout(async () => {
      await this.view(Number(this.el.scrub.value));
      if (drag === this.drags) this.dragging = false;
    }, SETTLE_MS);
  }

  async view(tick) {
    if (tick >= this.range.newest) return this.backToLive();
    try {
      const data = await this.run('view_at', { tick }, { quiet: true });
      this.store.viewPast(data);
    } catch { /* out of range by now: the next refresh moves the ends */ }
  }

  backToLive() {
    this.store.backToLive();
    this.el.scrub.value = String(this.range.newest);
  }

  async rewind() {
    const past = this.store.past;
    if (!past) return;
    await this.run('rewind', { tick: past.tick });
    this.backToLive();
  }

  show(past) {
    this.el.banner.hidden = !past;
    if (this.el.rewind) this.el.rewind.disabled = !past;
    if (past) this.el.bannerText.textContent = `Viewing tick ${past.tick} — the live world goes on.`;
  }
}
