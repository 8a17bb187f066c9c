// Canvas map of the town. Drawn only when something changed (the caller checks a
// dirty flag once per animation frame), all characters of one state in one path, so
// 10 000 dots cost one fill per state.

import { STATES, palette, RenderBudget } from './util.js';

const PIXEL_THRESHOLD = 1500; // above this many characters, dots are stamped as pixels

/** '#rrggbb' → the Uint32 of an opaque RGBA pixel (little-endian: 0xAABBGGRR). */
function pixelOf(hex) {
  const n = parseInt(hex.slice(1), 16);
  return ((0xff << 24) | ((n & 0xff) << 16) | (n & 0xff00) | ((n >> 16) & 0xff)) >>> 0;
}
let pixelColors = null;
/** The state colours as pixels, from the palette on first use. */
function statePixels() {
  pixelColors ||= Object.fromEntries(Object.entries(palette().state).map(([k, v]) => [k, pixelOf(v)]));
  return pixelColors;
}
const PAD = 14;

/**
 * Characters at the same place share its exact position; a fixed per-character
 * offset (golden-angle spiral) fans them out so a crowd reads as a crowd. The same
 * offset applies while traveling, so nobody jumps on arrival.
 */
const offsets = new Map();
function offsetOf(id) {
  let o = offsets.get(id);
  if (!o) {
    const a = id * 2.399963229728653;
    const r = 5 + ((id * 7) % 23);
    o = [Math.cos(a) * r, Math.sin(a) * r];
    offsets.set(id, o);
  }
  return o;
}

export class MapView {
  constructor({ canvas, tip }, store, { onSelect }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { alpha: false, willReadFrequently: true });
    this.tip = tip;
    this.store = store;
    this.onSelect = onSelect;
    this.selected = null;
    this.hits = []; // characters a breakpoint hit named (rings until dismissed)
    this.hover = null;
    this.drawnVersion = -1;
    this.dirty = true;
    this.budget = new RenderBudget(0, 0.35);
    this.drawnCount = 0;
    this.scale = 1;
    this.world = null; // the plane is 0..world on both axes (welcome.data.limits.town_size)
    this.ox = 0;
    this.oy = 0;
    store.on('welcome', ({ limits }) => {
      this.world = limits?.town_size ?? null;
      this.resize();
    });
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
    canvas.addEventListener('click', (e) => {
      const hit = this.hitTest(e);
      if (hit) this.onSelect(hit.id);
    });
    canvas.addEventListener('mousemove', (e) => this.onHover(e));
    canvas.addEventListener('mouseleave', () => {
      this.hover = null;
      this.tip.hidden = true;
      this.dirty = true;
    });
    this.resize();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.parentElement.clientWidth;
    const h = this.canvas.parentElement.clientHeight;
    this.cssW = w;
    this.cssH = h;
    this.canvas.width = Math.max(1, Math.round(w * dpr));
    this.canvas.height = Math.max(1, Math.round(h * dpr));
    this.dpr = dpr;
    // Keep the square plane square, centred.
    const side = Math.max(1, Math.min(w, h) - 2 * PAD);
    this.scale = this.world ? side / this.world : 0;
    this.ox = (w - side) / 2;
    this.oy = (h - side) / 2;
    this.dirty = true;
  }

  /** World → CSS pixels, with the character's fan-out offset when given an id. */
  toScreen(pos, id) {
    let [x, y] = pos;
    if (id !== undefined) {
      const [dx, dy] = offsetOf(id);
      x += dx;
      y += dy;
    }
    return [this.ox + x * this.scale, this.oy + y * this.scale];
  }

  /** Rings around these characters (a breakpoint hit's), until called with []. */
  highlight(ids) {
    this.hits = ids;
    this.dirty = true;
  }

  select(id) {
    this.selected = id;
    this.dirty = true;
  }

  /** Nearest character within 8 px of the pointer. A linear scan: fine for 10 000, and only on pointer events. */
  hitTest(e) {
    const rect = this.canvas.getBoundingClientRect();
    const mx = e.clientX - rect.left;
    const my = e.clientY - rect.top;
    let best = null;
    let bestD = 64;
    for (const c of this.store.shown.values()) {
      if (!c.position) continue;
      const [x, y] = this.toScreen(c.position, c.id);
      const d = (x - mx) ** 2 + (y - my) ** 2;
      if (d < bestD) {
        bestD = d;
        best = c;
      }
    }
    return best;
  }

  onHover(e) {
    const hit = this.hitTest(e);
    const id = hit ? hit.id : null;
    if (id !== this.hover) {
      this.hover = id;
      this.dirty = true;
    }
    if (hit) {
      const rect = this.canvas.getBoundingClientRect();
      this.tip.hidden = false;
      this.tip.style.left = `${e.clientX - rect.left}px`;
      this.tip.style.top = `${e.clientY - rect.top}px`;
      this.tip.textContent = `${hit.name} · ${hit.state} · ${this.store.locationName(hit.location)}`;
    } else {
      const place = this.placeAt(e);
      this.tip.hidden = !place;
      if (place) {
        const rect = this.canvas.getBoundingClientRect();
        this.tip.style.left = `${e.clientX - rect.left}px`;
        this.tip.style.top = `${e.clientY - rect.top}px`;
        this.tip.textContent = `${place.name} (${place.kind})`;
      }
    }
  }

  /** The place under the pointer (within 12 px of its centre), if any. */
  placeAt(e) {
    const rect = this.canvas.getBoundingClientRect();
    const mx = e.clientX - rect.left;
    const my = e.clientY - rect.top;
    let best = null;
    let bestD = 144;
    for (const l of this.store.locations) {
      const [x, y] = this.toScreen(l.position);
      const d = (x - mx) ** 2 + (y - my) ** 2;
      if (d < bestD) {
        bestD = d;
        best = l;
      }
    }
    return best;
  }

  /** Draws if anything changed since the last frame. */
  frame() {
    // A person's action (hover, select, resize) redraws at once; a stream of world
    // changes redraws as often as the render budget allows.
    if (!this.dirty && (this.drawnVersion === this.store.version || !this.budget.due())) return;
    this.dirty = false;
    this.drawnVersion = this.store.version;
    this.budget.run(() => this.draw());
  }

  draw() {
    const { ctx, store } = this;
    this.ensureBackground();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    if (store.shown.size > PIXEL_THRESHOLD) {
      this.drawCharacterPixels();
    } else {
      ctx.drawImage(this.bg, 0, 0);
      this.drawCharacters();
    }
    this.drawHighlights();
  }

  /**
   * Grid, places and labels change only with the town (a snapshot) or the canvas
   * size: they are painted once into an offscreen canvas and copied each frame.
   */
  ensureBackground() {
    const { canvas, store } = this;
    if (this.bg && this.bgLocations === store.locations && this.bgScale === this.scale
      && this.bg.width === canvas.width && this.bg.height === canvas.height) return;
    this.bg = this.bg || document.createElement('canvas');
    this.bg.width = canvas.width;
    this.bg.height = canvas.height;
    const bctx = this.bg.getContext('2d', { alpha: false, willReadFrequently: true });
    bctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    const pal = palette();
    bctx.fillStyle = pal.mapBg;
    bctx.fillRect(0, 0, this.cssW, this.cssH);
    const side = this.world * this.scale;
    // Plane and a faint grid in tenths.
    bctx.fillStyle = pal.mapPlane;
    bctx.fillRect(this.ox, this.oy, side, side);
    bctx.strokeStyle = pal.mapGrid;
    bctx.lineWidth = 1;
    bctx.beginPath();
    for (let i = 0; i <= 10; i++) {
      const p = Math.round((i * side) / 10) + 0.5;
      bctx.moveTo(this.ox + p, this.oy);
      bctx.lineTo(this.ox + p, this.oy + side);
      bctx.moveTo(this.ox, this.oy + p);
      bctx.lineTo(this.ox + side, this.oy + p);
    }
    bctx.stroke();
    this.drawLocations(bctx);
    this.bgPixels = new Uint32Array(bctx.getImageData(0, 0, canvas.width, canvas.height).data.buffer);
    this.frameImage = null;
    this.bgLocations = store.locations;
    this.bgScale = this.scale;
  }

  drawLocations(ctx) {
    const { store } = this;
    const homes = store.locations.filter((l) => l.kind === 'home');
    const places = store.locations.filter((l) => l.kind !== 'home');
    const homeSize = Math.max(3, Math.min(8, 9 * this.scale * 2));
    const pal = palette();
    ctx.fillStyle = pal.kind.home;
    for (const l of homes) {
      const [x, y] = this.toScreen(l.position);
      ctx.fillRect(x - homeSize / 2, y - homeSize / 2, homeSize, homeSize);
    }
    // A big town has hundreds of workplaces: then they get small discs and no labels
    // (hover names them), and only the unique places (market, tavern, park) are named.
    const crowded = places.length > 30;
    const r = crowded ? Math.max(5, 12 * this.scale) : Math.max(10, 30 * this.scale);
    const labelled = crowded ? places.filter((l) => l.kind !== 'workplace') : places;
    ctx.font = '600 11px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (const l of places) {
      const [x, y] = this.toScreen(l.position);
      ctx.fillStyle = pal.kind[l.kind] || pal.kindOther;
      ctx.globalAlpha = 0.55;
      ctx.beginPath();
      ctx.arc(x, y, r, 0, Math.PI * 2);
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.strokeStyle = pal.kind[l.kind] || pal.kindOtherLine;
      ctx.stroke();
    }
    // Labels after all discs, so no disc covers a label; a label that would overlap
    // one already placed tries above its disc, and is left out if that overlaps too
    // (hovering still names every character).
    const placed = [];
    const overlaps = (b) => placed.some((p) => b.x < p.x + p.w && p.x < b.x + b.w && b.y < p.y + p.h && p.y < b.y + b.h);
    for (const l of labelled) {
      const [x, y] = this.toScreen(l.position);
      const w = ctx.measureText(l.name).width + 6;
      let box = { x: x - w / 2, y: y + r + 2, w, h: 15 };
      if (overlaps(box)) box = { ...box, y: y - r - 17 };
      if (overlaps(box)) continue;
      placed.push(box);
      ctx.fillStyle = pal.mapLabelBg;
      ctx.fillRect(box.x, box.y, box.w, box.h);
      ctx.fillStyle = pal.mapLabel;
      ctx.fillText(l.name, x, box.y + 1);
    }
  }

  drawCharacters() {
    const { ctx, store } = this;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    const n = store.shown.size;
    const radius = n > 600 ? 2.6 : 3.6; // smaller dots as the crowd grows
    const byState = new Map(STATES.map((s) => [s, []]));
    for (const c of store.shown.values()) {
      if (!c.position) continue;
      (byState.get(c.state) || byState.get('idle')).push(c);
    }
    let drawn = 0;
    const colors = palette().state;
    for (const [state, list] of byState) {
      if (!list.length) continue;
      ctx.fillStyle = colors[state];
      ctx.beginPath();
      const { ox, oy, scale } = this;
      for (const c of list) {
        // Inlined toScreen: no allocation per character per frame.
        const o = offsetOf(c.id);
        const x = ox + (c.position[0] + o[0]) * scale;
        const y = oy + (c.position[1] + o[1]) * scale;
        ctx.moveTo(x + radius, y);
        ctx.arc(x, y, radius, 0, Math.PI * 2);
      }
      ctx.fill();
      drawn += list.length;
    }
    this.drawnCount = drawn;
  }

  /**
   * 10 000 dots as vector paths make the canvas expensive to rasterize and commit
   * (seconds per second on a machine without GPU). Stamped straight into a pixel
   * buffer over the cached background they cost about a millisecond.
   */
  drawCharacterPixels() {
    const { canvas, ctx, store, dpr } = this;
    const w = canvas.width;
    const h = canvas.height;
    if (!this.frameImage || this.frameImage.width !== w || this.frameImage.height !== h) {
      this.frameImage = ctx.createImageData(w, h);
      this.framePixels = new Uint32Array(this.frameImage.data.buffer);
    }
    const px = this.framePixels;
    px.set(this.bgPixels);
    const rd = Math.max(1, Math.round(1.5 * dpr));
    const stamp = [];
    for (let dy = -rd; dy <= rd; dy++) for (let dx = -rd; dx <= rd; dx++) if (dx * dx + dy * dy <= rd * rd + 0.5) stamp.push(dx, dy);
    const colors = statePixels();
    const sx = this.scale * dpr;
    const ox = this.ox * dpr;
    const oy = this.oy * dpr;
    let drawn = 0;
    for (const c of store.shown.values()) {
      if (!c.position) continue;
      const o = offsetOf(c.id);
      const x = Math.round(ox + (c.position[0] + o[0]) * sx);
      const y = Math.round(oy + (c.position[1] + o[1]) * sx);
      const color = colors[c.state] ?? colors.idle;
      for (let i = 0; i < stamp.length; i += 2) {
        const X = x + stamp[i];
        const Y = y + stamp[i + 1];
        if (X >= 0 && X < w && Y >= 0 && Y < h) px[Y * w + X] = color;
      }
      drawn++;
    }
    ctx.putImageData(this.frameImage, 0, 0);
    this.drawnCount = drawn;
  }

  /** Rings around the hovered and the selected character, and the selected one's name. */
  drawHighlights() {
    const { ctx, store } = this;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    const pal = palette();
    const rings = this.hits.map((id) => [id, pal.mapSelected, 12]);
    for (const [id, color, r] of [...rings, [this.hover, pal.mapHover, 7], [this.selected, pal.mapSelected, 9]]) {
      const c = id !== null ? store.shown.get(id) : null;
      if (!c || !c.position) continue;
      const [x, y] = this.toScreen(c.position, c.id);
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(x, y, r, 0, Math.PI * 2);
      ctx.stroke();
      if (id === this.selected) {
        ctx.font = '600 12px system-ui, sans-serif';
        ctx.textAlign = 'left';
        ctx.textBaseline = 'middle';
        const w = ctx.measureText(c.name).width;
        ctx.fillStyle = pal.mapNameBg;
        ctx.fillRect(x + 12, y - 9, w + 8, 18);
        ctx.fillStyle = pal.mapName;
        ctx.fillText(c.name, x + 16, y);
      }
    }
  }
}
