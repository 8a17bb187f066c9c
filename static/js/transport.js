// Transport: one live connection to the server, over WebSocket when possible and
// Server-Sent Events when not, with reconnection that loses nothing.
//
// - Reconnects with exponential backoff and full jitter (base 500 ms, cap 30 s): a
//   random delay in [0, min(cap, base·2^attempt)), so a server restart is not met by
//   every dashboard at the same instant.
// - After each (re)connect it sends `resume` with the last batch seq the store applied;
//   over SSE the same goes as `last_event_id`. The store dedupes and orders batches.
// - WebSocket "keeps failing" = 2 consecutive failures to open while /healthz answers
//   (the server is up, so the upgrade itself is refused or blocked): then it falls back
//   to SSE and, while there, tries WebSocket again every 30 s. A server that is simply
//   down does not count: we stay on WebSocket and back off.
// - Commands go over the WebSocket when it is live; otherwise (SSE, or between
//   reconnects) through POST /api/command. Background polls also go over HTTP when the
//   per-connection message budget (`welcome.data.limits.rate`) is getting used up, so
//   they never crowd out what the person types.

const BASE_MS = 500;
const CAP_MS = 30000;
const WS_FAILURES_BEFORE_SSE = 2;
const WS_RETRY_FROM_SSE_MS = 30000;
const COMMAND_TIMEOUT_MS = 15000;
const SSE_TOPICS = 'state_change,event_notification,character_update';
/** The share of the server's message budget we allow ourselves over WS for background work. */
const BACKGROUND_SHARE = 0.4;

/**
 * How many background messages per window may go over the WebSocket, for the server's
 * `limits.rate` ({messages, window_ms}); 0 when it is not known yet.
 */
export function backgroundBudget(rate) {
  return rate ? Math.floor(rate.messages * BACKGROUND_SHARE) : 0;
}

const CLOSE_REASONS = {
  1000: 'normal closure',
  1001: 'server shutting down',
  1006: 'connection lost',
  1008: 'policy violation',
  1009: 'message too big',
  1011: 'server error',
  1013: 'server full, try again later',
};

/** A command the server refused: carries the contract's error code. */
export class CommandError extends Error {
  constructor(data, status) {
    super(data?.message || 'command failed');
    this.code = data?.code;
    this.status = status;
    this.data = data;
  }
}

export function backoffDelay(attempt, rnd = Math.random) {
  return Math.floor(rnd() * Math.min(CAP_MS, BASE_MS * 2 ** attempt));
}

export class Transport {
  /**
   * @param {object} o
   * @param {string} o.token
   * @param {(msg: object, via: string) => void} o.onMessage every server object that
   *   is not the answer to one of our commands
   * @param {(status: object) => void} o.onStatus connection state changes
   * @param {() => number|null} o.lastSeq last batch seq applied by the store
   * @param {(message: string, kind?: string) => void} o.notify visible notification
   */
  constructor({ token, onMessage, onStatus, lastSeq, notify }) {
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.lastSeq = lastSeq;
    this.notify = notify;
    this.mode = 'ws';
    this.attempt = 0;
    this.wsOpenFailures = 0;
    this.ws = null;
    this.es = null;
    this.live = false;
    this.gen = 0; // bumps on every new connection; stale handlers check it
    this.nextId = 0;
    this.pending = new Map();
    this.sentTimes = [];
    this.reconnectTimer = null;
    this.wsRetryTimer = null;
    this.watchdog = null;
    this.heartbeatMs = 5000;
    this.rate = null; // welcome.data.limits.rate: {messages, window_ms}
    this.lastRecv = 0;
    this.stopped = false;
    this.stats = { connects: 0, reconnects: 0, wsOpenFailures: 0, fallbacks: 0 };
    this.status = { state: 'connecting', mode: 'ws' };
  }

  start() {
    this.connect();
  }

  /** Stops for good (bad token). */
  stop() {
    this.stopped = true;
    this.teardown();
    clearTimeout(this.reconnectTimer);
  }

  setStatus(state, extra = {}) {
    this.status = { state, mode: this.mode, ...extra };
    this.onStatus(this.status);
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    this.teardown();
    this.stats.connects++;
    this.setStatus('connecting');
    if (this.mode === 'ws') this.openWs();
    else this.openSse();
  }

  /** Closes whatever is open without triggering a reconnect. */
  teardown() {
    this.gen++;
    this.live = false;
    clearInterval(this.watchdog);
    clearInterval(this.wsRetryTimer);
    this.wsRetryTimer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try { ws.close(1000, 'client reconnecting'); } catch { /* already closed */ }
    }
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error('connection closed before the reply arrived'));
      this.pending.delete(id);
    }
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    this.stats.reconnects++;
    this.setStatus('reconnecting', { retryAt: Date.now() + delay });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  wsUrl() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${proto}://${location.host}/ws?token=${encodeURIComponent(this.token)}&snapshot=compact`;
  }

  // ---------------------------------------------------------------- WebSocket

  openWs() {
    const gen = this.gen;
    let opened = false;
    const ws = new WebSocket(this.wsUrl());
    this.ws = ws;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      opened = true;
      this.lastRecv = Date.now();
    };
    ws.onmessage = (e) => {
      if (gen !== this.gen) return;
      this.lastRecv = Date.now();
      if (e.data === 'pong') return;
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        this.notify(`Unreadable message from server: ${String(e.data).slice(0, 80)}`, 'error');
        return;
      }
      if (msg.type === 'welcome') this.onWsWelcome(msg);
      this.route(msg, 'ws');
    };
    ws.onclose = (e) => {
      if (gen !== this.gen) return;
      this.teardown();
      if (e.code === 1008 && /token|auth/i.test(e.reason)) {
        this.authFailed(`Server closed the connection: ${e.code} ${e.reason}`);
        return;
      }
      if (!opened) {
        this.onWsOpenFailure();
        return;
      }
      const why = e.reason || CLOSE_REASONS[e.code] || 'closed';
      this.notify(`Connection closed (${e.code} ${why}); reconnecting`, e.code === 1001 || e.code === 1006 ? 'warn' : 'error');
      this.scheduleReconnect();
    };
    // onerror always comes with onclose, which handles it.
  }

  onWsWelcome(msg) {
    this.live = true;
    this.attempt = 0;
    this.wsOpenFailures = 0;
    this.heartbeatMs = msg.data?.heartbeat_interval_ms || 5000;
    this.rate = msg.data?.limits?.rate ?? null;
    // Positions need character_update, which is not a default topic.
    this.send({ type: 'subscribe', topics: ['character_update'] });
    const last = this.lastSeq();
    if (last !== null && last !== undefined) this.send({ type: 'resume', last_seq: last });
    this.setStatus('live');
    this.startWatchdog();
  }

  /**
   * Repairs a gap the store saw on this connection: the server resends every batch
   * after `lastSeq`. Over SSE (which cannot send) the store's gap timer takes over.
   */
  resumeAfter(lastSeq) {
    if (this.live && this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.send({ type: 'resume', last_seq: lastSeq });
    }
  }

  /** A silent socket (paused world, idle server) is probed with a heartbeat; no answer → reconnect. */
  startWatchdog() {
    clearInterval(this.watchdog);
    let probeSentAt = 0;
    this.watchdog = setInterval(() => {
      if (!this.ws || !this.live) return;
      const quiet = Date.now() - this.lastRecv;
      if (quiet > this.heartbeatMs * 2 && !probeSentAt) {
        probeSentAt = Date.now();
        this.send({ type: 'heartbeat' });
      } else if (probeSentAt && this.lastRecv > probeSentAt) {
        probeSentAt = 0;
      } else if (probeSentAt && Date.now() - probeSentAt > 10000) {
        probeSentAt = 0;
        this.notify('Server stopped answering; reconnecting', 'warn');
        this.teardown();
        this.scheduleReconnect();
      }
    }, 1000);
  }

  async onWsOpenFailure() {
    this.stats.wsOpenFailures++;
    const gen = this.gen;
    const up = await this.serverUp();
    if (gen !== this.gen || this.stopped) return;
    if (!up) {
      // The server is down, not WebSocket: keep preferring WebSocket.
      this.wsOpenFailures = 0;
      this.scheduleReconnect();
      return;
    }
    this.wsOpenFailures++;
    if (this.wsOpenFailures >= WS_FAILURES_BEFORE_SSE) {
      this.wsOpenFailures = 0;
      this.mode = 'sse';
      this.stats.fallbacks++;
      this.notify('WebSocket is unavailable here; switched to Server-Sent Events', 'warn');
      this.connect();
    } else {
      this.scheduleReconnect();
    }
  }

  async serverUp() {
    try {
      const res = await fetch('/healthz', { cache: 'no-store', signal: AbortSignal.timeout(3000) });
      return res.ok;
    } catch {
      return false;
    }
  }

  send(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(obj));
    this.sentTimes.push(Date.now());
    return true;
  }

  /** Messages sent over the current WebSocket in the server's last rate window. */
  recentSends() {
    const cutoff = Date.now() - (this.rate?.window_ms ?? 0);
    while (this.sentTimes.length && this.sentTimes[0] < cutoff) this.sentTimes.shift();
    return this.sentTimes.length;
  }

  // ---------------------------------------------------------------------- SSE

  openSse() {
    const gen = this.gen;
    let gotMessage = false;
    const last = this.lastSeq();
    let url = `/events?token=${encodeURIComponent(this.token)}&topics=${SSE_TOPICS}&snapshot=compact`;
    if (last !== null && last !== undefined) url += `&last_event_id=${last}`;
    const es = new EventSource(url);
    this.es = es;
    es.onmessage = (e) => {
      if (gen !== this.gen) return;
      gotMessage = true;
      this.lastRecv = Date.now();
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        this.notify(`Unreadable event from server: ${String(e.data).slice(0, 80)}`, 'error');
        return;
      }
      if (msg.type === 'welcome') {
        this.live = true;
        this.attempt = 0;
        this.setStatus('live');
        this.startWsRetry();
      }
      this.route(msg, 'sse');
    };
    es.onerror = async () => {
      if (gen !== this.gen) return;
      // We manage reconnection ourselves (backoff, last_event_id, WS retry) rather than
      // letting EventSource retry blindly.
      this.teardown();
      const after = this.gen;
      if (!gotMessage) {
        const verdict = await this.checkToken();
        if (this.stopped || after !== this.gen) return;
        if (verdict === 'unauthorized') {
          this.authFailed('The server refused the token (HTTP 401)');
          return;
        }
        if (verdict === 'down') this.mode = 'ws'; // server is down: prefer WS when it is back
      } else {
        this.notify('Event stream interrupted; reconnecting', 'warn');
      }
      this.scheduleReconnect();
    };
  }

  /** 'ok' | 'unauthorized' | 'down', by asking for metrics over HTTP. */
  async checkToken() {
    try {
      const res = await fetch('/api/command', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.token}` },
        body: JSON.stringify({ cmd: 'metrics', args: {} }),
        signal: AbortSignal.timeout(3000),
      });
      if (res.status === 401) return 'unauthorized';
      return 'ok';
    } catch {
      return 'down';
    }
  }

  /** While on SSE, try WebSocket again every 30 s; on success switch over. */
  startWsRetry() {
    clearInterval(this.wsRetryTimer);
    const gen = this.gen;
    this.wsRetryTimer = setInterval(() => {
      if (gen !== this.gen || this.mode !== 'sse') return;
      const probe = new WebSocket(this.wsUrl());
      const timer = setTimeout(() => probe.close(), 5000);
      probe.onopen = () => {
        clearTimeout(timer);
        probe.close(1000, 'probe');
        if (gen !== this.gen) return;
        this.mode = 'ws';
        this.notify('WebSocket is available again; switching back from SSE', 'info');
        this.connect();
      };
      probe.onerror = () => clearTimeout(timer);
    }, WS_RETRY_FROM_SSE_MS);
  }

  // ----------------------------------------------------------------- messages

  route(msg, via) {
    if ((msg.type === 'reply' || msg.type === 'error') && msg.id !== undefined && this.pending.has(String(msg.id))) {
      const p = this.pending.get(String(msg.id));
      this.pending.delete(String(msg.id));
      clearTimeout(p.timer);
      if (msg.type === 'reply') p.resolve(msg.data);
      else p.reject(new CommandError(msg.data));
      return;
    }
    this.onMessage(msg, via);
  }

  authFailed(message) {
    this.stopped = true;
    this.teardown();
    this.setStatus('auth-failed', { detail: message });
  }

  /**
   * Runs a command; resolves with the reply's data, rejects with a CommandError.
   * background: a poll the person did not ask for; sent over HTTP once it would take
   * more than its share of the server's message budget.
   */
  command(cmd, args = {}, { background = false } = {}) {
    const wsLive = this.mode === 'ws' && this.live && this.ws && this.ws.readyState === WebSocket.OPEN;
    if (wsLive && (!background || this.recentSends() < backgroundBudget(this.rate))) {
      const id = `c${++this.nextId}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new Error(`no reply to \`${cmd}\` within ${COMMAND_TIMEOUT_MS / 1000} s`));
        }, COMMAND_TIMEOUT_MS);
        this.pending.set(id, { resolve, reject, timer });
        this.send({ type: 'command', id, cmd, args });
      });
    }
    return this.httpCommand(cmd, args);
  }

  async httpCommand(cmd, args) {
    const id = `h${++this.nextId}`;
    let res;
    try {
      res = await fetch('/api/command', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.token}` },
        body: JSON.stringify({ type: 'command', id, cmd, args }),
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      });
    } catch (e) {
      throw new Error(`server unreachable (${e.name === 'TimeoutError' ? 'timeout' : e.message})`);
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      /* non-JSON body: handled below */
    }
    if (body && body.type === 'error') throw new CommandError(body.data, res.status);
    if (!res.ok) throw new CommandError({ code: res.status, message: `HTTP ${res.status} ${res.statusText}` }, res.status);
    if (!body || body.type !== 'reply') throw new Error('unexpected response to command');
    return body.data;
  }
}

export { CLOSE_REASONS };
