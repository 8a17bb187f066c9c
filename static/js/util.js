// Small shared helpers: the palette (one set of colours for map, table, chart and
// badges, so a colour means the same thing everywhere) and formatting.

/** The states of the contract, in the order used by legends and the chart. */
export const STATES = ['idle', 'sleeping', 'working', 'eating', 'traveling', 'socializing'];

/** The kinds of place that have a colour of their own. */
export const KINDS = ['home', 'workplace', 'market', 'tavern', 'park'];

export const NEEDS = ['energy', 'hunger', 'social'];

let cachedPalette = null;

/**
 * The palette as colour strings, for drawing on a canvas. The colours are defined once,
 * as custom properties in app.css (:root); elements use them as var(--state-…) and
 * canvases read them here (Okabe–Ito based, colour-blind friendly, on the dark
 * background). Read on first use, when the stylesheet has applied.
 */
export function palette() {
  if (cachedPalette) return cachedPalette;
  const css = getComputedStyle(document.documentElement);
  const get = (name) => css.getPropertyValue(name).trim();
  const each = (list, prefix) => Object.fromEntries(list.map((k) => [k, get(`--${prefix}-${k}`)]));
  cachedPalette = {
    state: each(STATES, 'state'),
    kind: each(KINDS, 'kind'),
    need: each(NEEDS, 'need'),
    ...Object.fromEntries([
      'state-unknown', 'kind-other', 'kind-other-line', 'map-bg', 'map-plane', 'map-grid', 'map-label', 'map-label-bg',
      'map-name', 'map-name-bg', 'map-hover', 'map-selected', 'chart-text', 'chart-grid',
    ].map((n) => [n.replace(/-(\w)/g, (_, c) => c.toUpperCase()), get(`--${n}`)])),
  };
  return cachedPalette;
}

/** A state's fill colour as CSS, for an element's style (the palette in app.css). */
export function stateColor(state) {
  return STATES.includes(state) ? `var(--state-${state})` : 'var(--state-unknown)';
}

/** Shorthand for document.getElementById. */
export const $ = (id) => document.getElementById(id);

/** Creates an element with attributes and children; text children become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Game time: 1 tick = 1 game minute. */
export function fmtTicks(ticks) {
  if (ticks === null || ticks === undefined) return '–';
  if (ticks < 60) return `${ticks} min`;
  const h = Math.floor(ticks / 60);
  const m = ticks % 60;
  if (h < 24) return `${h} h ${m} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/**
 * The game clock at `tick`, from the server's clock at an earlier tick (the last
 * snapshot's `clock` and `tick`): one tick is one game minute, so the clock only
 * advances by the ticks in between. '–' when the server sent no clock.
 */
export function fmtClock(base, tick) {
  if (!base || tick === null || tick === undefined) return '–';
  const total = (base.day - 1) * 1440 + base.minute_of_day + (tick - base.tick);
  const day = Math.floor(total / 1440) + 1;
  const mins = ((total % 1440) + 1440) % 1440;
  const hh = String(Math.floor(mins / 60)).padStart(2, '0');
  const mm = String(mins % 60).padStart(2, '0');
  return `day ${day}, ${hh}:${mm}`;
}

/** Counts events in a sliding window of wall time, for the per-second rates. */
export class RateMeter {
  constructor(windowMs = 3000) {
    this.windowMs = windowMs;
    this.samples = []; // [timeMs, amount]
  }
  add(amount = 1, now = performance.now()) {
    this.samples.push([now, amount]);
    this.trim(now);
  }
  trim(now) {
    const cutoff = now - this.windowMs;
    let i = 0;
    while (i < this.samples.length && this.samples[i][0] < cutoff) i++;
    if (i) this.samples.splice(0, i);
  }
  perSecond(now = performance.now()) {
    this.trim(now);
    let sum = 0;
    for (const s of this.samples) sum += s[1];
    return (sum * 1000) / this.windowMs;
  }
}

/** Calls `fn` at most once per `ms`, always running the last call (trailing edge). */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  let pendingArgs = null;
  return (...args) => {
    pendingArgs = args;
    const wait = last + ms - Date.now();
    if (wait <= 0 && !timer) {
      last = Date.now();
      fn(...pendingArgs);
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn(...pendingArgs);
      }, Math.max(wait, 0));
    }
  };
}

/**
 * Spaces out a recurring piece of rendering so it takes at most `share` of the main
 * thread: after a run that cost c ms, the next is due max(minMs, c / share) later
 * (c smoothed). Small worlds render every frame; a 10 000-character town trades
 * update rate for responsiveness instead of falling behind the stream.
 */
export class RenderBudget {
  constructor(minMs, share) {
    this.minMs = minMs;
    this.share = share;
    this.cost = 0;
    this.next = 0;
  }
  due(now = performance.now()) {
    return now >= this.next;
  }
  /** Makes the next run due now (a person's action should not wait). */
  hurry() {
    this.next = 0;
  }
  run(fn) {
    const t0 = performance.now();
    fn();
    const c = performance.now() - t0;
    this.cost = this.cost ? this.cost * 0.7 + c * 0.3 : c;
    this.next = t0 + Math.max(this.minMs, this.cost / this.share);
  }
}

/**
 * A `control` item (who changed the simulation, and how) in words: "alice paused",
 * "bob set speed 5". One wording for the event log and anything else that shows it.
 */
export function describeControl({ command, by, args = {} }) {
  const what = {
    pause: () => 'paused',
    resume: () => 'resumed',
    step: () => `stepped ${args.ticks} tick${args.ticks === 1 ? '' : 's'}`,
    set_speed: () => `set speed ${args.tick_rate}`,
    set_state: () => `set #${args.character_id} to ${args.state}`,
    spawn: () => `spawned ${args.name ?? 'a character'}`,
    remove: () => `removed #${args.character_id}`,
    schedule: () => `scheduled ${args.event_type} in ${args.in_ticks} ticks`,
    cancel: () => `cancelled event #${args.event_id}`,
    reset: () => (args.seed !== undefined ? `reset the world (seed ${args.seed})` : 'reset the world'),
    rewind: () => `rewound the world to tick ${args.tick}`,
    break: () => `set a breakpoint: ${args.when}`,
    unbreak: () => `removed breakpoint #${args.breakpoint_id}`,
  }[command];
  return `${by ?? 'someone'} ${what ? what() : command}`;
}
