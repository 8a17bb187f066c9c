// Wiring: token → transport → store → views. Each view reads the store once per
// animation frame and touches the DOM only when what it shows changed. This file is
// the one that looks elements up: every view is handed its elements as an object
// (`new View({ name: element, … }, store, callbacks)`), and every command goes
// through `run` below.

import { $, STATES, stateColor, fmtNum } from './util.js';
import { toast, describeError, errorText, banner } from './toast.js';
import { Transport } from './transport.js';
import { Store } from './store.js';
import { MapView } from './map.js';
import { PopulationChart } from './chart.js';
import { CharTable } from './table.js';
import { EventLog } from './log.js';
import { Inspector } from './inspector.js';
import { Controls } from './controls.js';
import { Console, VIEWER_COMMANDS } from './console.js';
import { MetricsStrip } from './metrics.js';
import { AuditPanel } from './audit.js';
import { PresenceView } from './presence.js';
import { TimeTravel } from './timetravel.js';
import { Breakpoints } from './breakpoints.js';

const TOKEN_KEY = 'simcast.token';

/** The token from ?token= (then removed from the address bar) or from this tab's session. */
function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    // Out of the address bar, history and anything the person screenshots or shares.
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    return fromUrl;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function askForToken(message) {
  if (message) banner(message);
  const form = $('token-form');
  form.hidden = false;
  $('token-input').focus();
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token-input').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    location.reload();
  }, { once: true });
}

function main() {
  const token = takeToken();
  if (!token) {
    askForToken('This dashboard needs an access token: open it with ?token=… or paste one below.');
    $('conn-state').textContent = 'No token';
    $('conn-state').dataset.state = 'auth-failed';
    return;
  }

  const store = new Store();
  let role = null;
  const notify = (message, kind = 'info') => toast(message, kind);

  const transport = new Transport({
    token,
    lastSeq: () => store.logSeq ?? store.seq,
    notify,
    onStatus: showStatus,
    onMessage(msg) {
      switch (msg.type) {
        case 'welcome':
          store.welcome(msg.data);
          applyRole(msg.data.role);
          break;
        case 'snapshot':
          store.applySnapshot(msg.data);
          break;
        case 'batch':
          store.applyBatch(msg);
          break;
        case 'presence':
          presence.apply(msg.data);
          break;
        case 'error':
          // Errors not tied to one of our commands (rate limit, bad subscribe…).
          toast(describeError(msg.data), 'error', 'Server error');
          break;
        case 'reply': // acks without an id (subscribe)
        case 'heartbeat':
          break;
        default:
          console.warn('unknown message type', msg.type);
      }
    },
  });
  store.on('gap-detected', ({ lastSeq }) => transport.resumeAfter(lastSeq));

  /**
   * The one path every command of this page takes: runs it, mirrors its effect into
   * the store, refreshes the audit panel after anything the audit records (an operator
   * command other than `audit`, refused or not), and shows failures unless `quiet`
   * (the caller shows them itself). `background`: a poll the person did not ask for.
   */
  async function run(cmd, args, { quiet = false, background = false } = {}) {
    const epoch = store.epoch;
    const audited = () => role === 'operator' && !VIEWER_COMMANDS.includes(cmd) && cmd !== 'audit';
    try {
      const data = await transport.command(cmd, args, { background });
      if (cmd === 'pause' || cmd === 'resume' || cmd === 'step') {
        if (typeof data.paused === 'boolean') store.paused = data.paused;
        store.observeTick(data.tick, epoch);
      } else if (cmd === 'set_speed') {
        store.tickRate = data.tick_rate;
      }
      if (audited()) audit.soon();
      return data;
    } catch (e) {
      if (audited()) audit.soon(); // a refused command is in the audit too
      if (!quiet) toast(`${cmd}: ${errorText(e)}`, 'error', 'Command failed');
      throw e;
    }
  }

  const select = (id) => {
    map.select(id);
    table.select(id);
    inspector.select(id);
  };

  const map = new MapView({ canvas: $('map'), tip: $('map-tip') }, store, { onSelect: select });
  const chart = new PopulationChart({ canvas: $('chart'), range: $('chart-range') }, store);
  const table = new CharTable({
    scroll: $('char-table-scroll'),
    table: $('char-table'),
    tbody: $('char-tbody'),
    filter: $('table-filter'),
    stateSelect: $('table-state'),
    count: $('table-count'),
  }, store, { onSelect: select });
  const log = new EventLog({
    list: $('event-log'),
    jump: $('log-jump'),
    typeSelect: $('log-type'),
    charInput: $('log-char'),
  }, store, { onSelect: select });
  const inspector = new Inspector({
    body: $('insp-body'),
    empty: $('insp-empty'),
    homework: $('insp-homework'),
    id: $('insp-id'),
    location: $('insp-location'),
    name: $('insp-name'),
    needs: $('insp-needs'),
    plan: $('insp-plan'),
    set: $('insp-set'),
    setBtn: $('insp-set-btn'),
    setState: $('insp-set-state'),
    state: $('insp-state'),
    time: $('insp-time'),
    transitions: $('insp-transitions'),
  }, store, { run, notify, onSelect: select, isLive: () => transport.live });
  const controls = new Controls({
    copySeed: $('btn-copy-seed'),
    pause: $('btn-pause'),
    reset: $('btn-reset'),
    schedule: $('btn-schedule'),
    step: $('btn-step'),
    resetSeed: $('reset-seed'),
    schedData: $('sched-data'),
    schedIn: $('sched-in'),
    schedType: $('sched-type'),
    seed: $('seed'),
    speedRange: $('speed-range'),
    speedValue: $('speed-value'),
    stepN: $('step-n'),
  }, store, { run, notify });
  const metrics = new MetricsStrip({
    bps: $('bps'),
    charCount: $('char-count'),
    clock: $('clock'),
    eps: $('eps'),
    seq: $('seq'),
    tick: $('tick'),
    tps: $('tps'),
  }, store);
  new TimeTravel({
    scrub: $('scrub'),
    rangeLabel: $('scrub-range'),
    banner: $('past-banner'),
    bannerText: $('past-text'),
    live: $('btn-live'),
    rewind: $('btn-rewind'),
    csv: $('csv-link'),
  }, store, { run, token });
  const breakpoints = new Breakpoints({
    form: $('bp-form'),
    input: $('bp-input'),
    error: $('bp-error'),
    list: $('bp-list'),
    banner: $('bp-banner'),
    bannerText: $('bp-text'),
    dismiss: $('bp-dismiss'),
  }, store, { run, onHit: (ids) => map.highlight(ids) });
  const presence = new PresenceView({ cell: $('watching'), viewers: $('viewers'), operators: $('operators'), list: $('presence-list') });
  const audit = new AuditPanel({ list: $('audit-list'), refresh: $('audit-refresh'), count: $('audit-count') }, store, { run });
  // The console shows its own errors inline, next to what was typed.
  new Console({ form: $('console-form'), input: $('console-input'), output: $('console-output') }, {
    run: (cmd, args) => run(cmd, args, { quiet: true }),
    store,
    isViewer: () => role !== 'operator',
  });

  function applyRole(r) {
    if (r === role) return;
    role = r;
    const badge = $('role');
    badge.hidden = false;
    badge.textContent = r;
    badge.dataset.role = r;
    if (r === 'operator') {
      $('controls').hidden = false;
      $('audit').hidden = false;
      $('layout').classList.add('with-audit');
      audit.enable();
      breakpoints.refresh();
    } else {
      // A viewer gets no operator controls at all, not merely disabled ones.
      $('controls')?.remove();
      for (const n of document.querySelectorAll('.operator-only')) n.remove();
    }
  }

  // Connection state, with a live countdown while waiting to reconnect.
  let statusTimer = null;
  function showStatus(s) {
    const node = $('conn-state');
    clearInterval(statusTimer);
    node.dataset.state = s.state;
    node.dataset.mode = s.mode;
    const via = s.mode === 'sse' ? 'SSE' : 'WebSocket';
    if (s.state === 'live') {
      node.textContent = `Live · ${via}`;
      banner(null);
    } else if (s.state === 'connecting') {
      node.textContent = `Connecting · ${via}…`;
    } else if (s.state === 'reconnecting') {
      const tickDown = () => {
        const secs = Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000));
        node.textContent = `Reconnecting in ${secs} s`;
      };
      tickDown();
      statusTimer = setInterval(tickDown, 250);
    } else if (s.state === 'auth-failed') {
      node.textContent = 'Not authorized';
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(`${s.detail}. Enter a valid token to connect.`);
    }
  }

  // Legend with live counts per state (shared by map and chart).
  const legend = $('legend');
  for (const s of STATES) {
    const item = document.createElement('span');
    item.innerHTML = `<i class="swatch" style="background:${stateColor(s)}"></i>${s} <b data-count="${s}">0</b>`;
    legend.append(item);
  }
  let legendVersion = -1;
  function drawLegend() {
    if (legendVersion === store.version) return;
    legendVersion = store.version;
    for (const s of STATES) legend.querySelector(`[data-count=${s}]`).textContent = fmtNum(store.counts[s] || 0);
  }

  function frame() {
    try {
      map.frame();
      chart.frame();
      table.frame();
      log.frame();
      inspector.frame();
      if (role === 'operator') controls.frame();
      metrics.frame();
      presence.frame();
      drawLegend();
    } catch (e) {
      console.error(e);
      toast(`dashboard error: ${e.message}`, 'error');
    }
    requestAnimationFrame(frame);
  }
  requestAnimationFrame(frame);

  // For tests and the curious: read-only views of what the page holds.
  window.__simcast = {
    store,
    transport,
    views: { map, chart, table, log, inspector, metrics, audit },
    info() {
      return {
        role,
        state: transport.status.state,
        mode: transport.status.mode,
        tick: store.tick,
        seq: store.seq,
        logSeq: store.logSeq,
        paused: store.paused,
        seed: store.seed,
        characters: store.characters.size,
        locations: store.locations.length,
        drawnCharacters: map.drawnCount,
        tableRows: table.rows.length,
        renderedRows: table.renderedRows,
        logRows: log.rowCount,
        logEntries: log.total,
        inspected: inspector.id,
        presence: presence.data,
        counts: { ...store.counts },
        store: { ...store.stats },
        transport: { ...transport.stats },
      };
    },
    select,
    /** Where a character is drawn, in viewport coordinates (for clicking it). */
    mapPoint(id) {
      const c = store.characters.get(id);
      if (!c || !c.position) return null;
      const [x, y] = map.toScreen(c.position, c.id);
      const r = $('map').getBoundingClientRect();
      return { x: r.left + x, y: r.top + y };
    },
  };

  transport.start();
}

main();
