// Starts and stops a real simcast server for the browser test: a free port on
// 127.0.0.1, a temp config and data dir, readiness via GET /healthz, and a stop that
// signals exactly the child's pid (never by name).

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const OPERATOR_TOKEN = 'op-token';
export const VIEWER_TOKEN = 'viewer-token';

// Every server still running, so that an interrupted run (timeout, Ctrl-C, crash)
// does not leave one behind: each is killed by its own pid on the way out.
const running = new Set();
process.on('exit', () => {
  for (const proc of running) {
    try { process.kill(proc.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => process.exit(sig === 'SIGINT' ? 130 : 143));
}

export const BIN = process.env.SIMCAST_BIN || fileURLToPath(new URL('../../target/debug/simcast', import.meta.url));

/** A port the OS just handed out (bind to :0, read it, close). */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * A temp dir with config.toml (and the data dir the config points at). `extra` is TOML
 * appended at the end (whole sections, e.g. "[session]\nrate_limit_messages = 30").
 */
export function makeConfig({ websocketEnabled = true, characters = 60, tickRate = 10, extra = '' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'simcast-e2e-'));
  const config = join(dir, 'config.toml');
  writeFileSync(config, `
[[auth.tokens]]
token = "${OPERATOR_TOKEN}"
role = "operator"
[[auth.tokens]]
token = "${VIEWER_TOKEN}"
role = "viewer"
[sim]
characters = ${characters}
tick_rate = ${tickRate}
[persistence]
dir = "${join(dir, 'data')}"
[server]
websocket_enabled = ${websocketEnabled}
${extra}
`);
  return { dir, config, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Starts the server and resolves once /healthz answers 200.
 * Returns { proc, port, base, log() }.
 */
export async function startServer({ config, port, timeoutMs = 20000 }) {
  const proc = spawn(BIN, ['--config', config, '--bind', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' },
  });
  let output = '';
  const keep = (chunk) => {
    output += chunk;
    if (output.length > 200000) output = output.slice(-100000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  running.add(proc);
  let exited = null;
  proc.on('exit', (code, signal) => {
    exited = { code, signal };
    running.delete(proc);
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`server exited early (${JSON.stringify(exited)}):\n${output}`);
    try {
      const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return { proc, port, base, log: () => output };
    } catch {
      /* not up yet */
    }
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error(`server did not become healthy within ${timeoutMs} ms:\n${output}`);
}

/** SIGTERM to this pid; SIGKILL if it has not exited within 5 s. */
export async function stopServer(server) {
  const { proc } = server;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((res) => proc.once('exit', res));
  process.kill(proc.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, 'SIGKILL');
  }, 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * A nats-server with JetStream on a free loopback port (never 4222) with a store
 * directory of its own, for the cluster test. The binary: $SIMCAST_NATS_SERVER (which
 * scripts/e2e.sh sets from scripts/install-nats.sh), else `nats-server` on PATH.
 * Returns { proc, url, stop() }.
 */
export async function startNats({ timeoutMs = 10000 } = {}) {
  const bin = process.env.SIMCAST_NATS_SERVER || 'nats-server';
  let port = await freePort();
  if (port === 4222) port = await freePort();
  const store = mkdtempSync(join(tmpdir(), 'simcast-e2e-nats-'));
  const proc = spawn(bin, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (c) => { output += c; });
  proc.stderr.on('data', (c) => { output += c; });
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  const stop = async () => {
    await stopServer({ proc });
    rmSync(store, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (/Server is ready/.test(output)) return { proc, url: `nats://127.0.0.1:${port}`, stop };
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  proc.kill('SIGKILL');
  throw new Error(`nats-server did not start:\n${output}`);
}
