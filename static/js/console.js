// The console: a person types `step 10`, `set_state 42 sleeping`, `inspect 3`,
// `schedule festival 20 {"x":1}` and sees the reply. Words map to the contract's
// commands and args; a raw JSON command object also works.

import { STATES } from './util.js';
import { errorText } from './toast.js';
import { describeEntry } from './audit.js';

export const VIEWER_COMMANDS = ['inspect', 'snapshot', 'metrics'];

/** The help text, with the server's bounds (welcome.data.limits) where it has them. */
export function helpText(limits) {
  const range = (b) => (b ? `${b.min}–${b.max}` : 'see the server');
  return `Commands (operator-only marked *):
  inspect ID                     a character in detail
  snapshot | metrics             the world / server counters
  pause* | resume*               stop / restart the clock
  step* [N]                      advance N ticks (default 1; ${range(limits?.step_ticks)})
  speed* RATE                    ticks per second, ${range(limits?.tick_rate)} (alias set_speed)
  set_state* ID STATE            ${STATES.join(', ')}
  spawn* [NAME [LOCATION]]       add a character
  remove* ID                     remove a character
  schedule* TYPE IN_TICKS [JSON] e.g. schedule festival 20 {"x":1}
  cancel* EVENT_ID               cancel a scheduled event
  reset* [SEED]                  rebuild the world
  save*                          write world.json
  debug_log* on|off
  audit* [N]                     the last N operator commands (default 100)
  {"cmd":"…","args":{…}}         any command as JSON
  clear                          clear this output; ↑/↓ recall history`;
}

const int = (s, what) => {
  if (s === undefined || !/^\d+$/.test(s)) throw new Error(`${what} must be a whole number`);
  return Number(s);
};

/**
 * Parses one console line into {cmd, args}, or {local: 'help'|'clear'}.
 * Throws an Error with a readable message on bad input.
 */
export function parseLine(line) {
  const text = line.trim();
  if (!text) return null;
  if (text.startsWith('{')) {
    let obj;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new Error(`invalid JSON: ${e.message}`);
    }
    if (typeof obj.cmd !== 'string') throw new Error('a JSON command needs "cmd"');
    return { cmd: obj.cmd, args: obj.args || {} };
  }
  const [word, ...rest] = text.split(/\s+/);
  const w = word.toLowerCase().replace(/-/g, '_');
  switch (w) {
    case 'help':
    case '?':
      return { local: 'help' };
    case 'clear':
    case 'cls':
      return { local: 'clear' };
    case 'pause':
    case 'resume':
    case 'snapshot':
    case 'metrics':
    case 'save':
      return { cmd: w, args: {} };
    case 'step':
      return { cmd: 'step', args: { ticks: rest[0] === undefined ? 1 : int(rest[0], 'N') } };
    case 'speed':
    case 'set_speed': {
      const r = Number(rest[0]);
      if (!rest[0] || !Number.isFinite(r)) throw new Error('usage: speed RATE (ticks per second)');
      return { cmd: 'set_speed', args: { tick_rate: r } };
    }
    case 'set_state':
    case 'state': {
      if (rest.length < 2) throw new Error('usage: set_state ID STATE');
      return { cmd: 'set_state', args: { character_id: int(rest[0].replace(/^#/, ''), 'ID'), state: rest[1].toLowerCase() } };
    }
    case 'inspect':
    case 'remove':
      return { cmd: w, args: { character_id: int(rest[0]?.replace(/^#/, ''), 'ID') } };
    case 'cancel':
      return { cmd: 'cancel', args: { event_id: int(rest[0]?.replace(/^#/, ''), 'EVENT_ID') } };
    case 'spawn': {
      const args = {};
      if (rest[0]) args.name = rest[0];
      if (rest[1]) args.location = rest[1];
      return { cmd: 'spawn', args };
    }
    case 'schedule': {
      // schedule TYPE IN_TICKS [JSON]   (also: schedule TYPE in IN_TICKS …, --in IN_TICKS)
      const m = text.match(/^\S+\s+(\S+)\s+(?:(?:in|--in)\s+)?(\d+)\s*(.*)$/i);
      if (!m) throw new Error('usage: schedule TYPE IN_TICKS [JSON]');
      const args = { event_type: m[1], in_ticks: Number(m[2]) };
      if (m[3]) {
        try {
          args.data = JSON.parse(m[3]);
        } catch (e) {
          throw new Error(`event data is not valid JSON: ${e.message}`);
        }
      }
      return { cmd: 'schedule', args };
    }
    case 'reset':
      return { cmd: 'reset', args: rest[0] === undefined ? {} : { seed: int(rest[0], 'SEED') } };
    case 'audit':
      return { cmd: 'audit', args: rest[0] === undefined ? {} : { limit: int(rest[0], 'N') } };
    case 'debug_log': {
      const v = (rest[0] || '').toLowerCase();
      if (!['on', 'off', 'true', 'false'].includes(v)) throw new Error('usage: debug_log on|off');
      return { cmd: 'debug_log', args: { enabled: v === 'on' || v === 'true' } };
    }
    default:
      throw new Error(`unknown command \`${word}\`; type help`);
  }
}

/** A short human summary of a reply, followed by its JSON when that adds anything. */
export function summarize(cmd, data, store) {
  const { ok, ...rest } = data || {};
  switch (cmd) {
    case 'step':
      return `stepped ${rest.stepped} → tick ${rest.tick}${rest.paused ? ' (paused)' : ''}`;
    case 'pause':
    case 'resume':
      return `${rest.paused ? 'paused' : 'running'} at tick ${rest.tick}`;
    case 'set_speed':
      return `tick rate ${rest.tick_rate} /s`;
    case 'set_state':
      return `#${rest.character_id} → ${rest.state}`;
    case 'schedule':
      return `scheduled event #${rest.event_id}, due at tick ${rest.due_tick}`;
    case 'reset':
      return `world reset with seed ${rest.seed}`;
    case 'remove':
      return `removed #${rest.character_id}`;
    case 'spawn':
      return `spawned ${rest.character?.name ?? ''} #${rest.character_id} at ${store.locationName(rest.character?.location)}`;
    case 'cancel':
      return `cancelled event #${rest.event_id}`;
    case 'debug_log':
      return `debug log ${rest.enabled ? 'on' : 'off'}`;
    case 'audit': {
      const entries = rest.entries || [];
      return [`${entries.length} audit entries, oldest first`, ...entries.map(describeEntry)].join('\n');
    }
    case 'metrics':
      return `tick ${rest.tick} · seq ${rest.seq} · ${rest.connections_active} connected · ${rest.characters} characters · `
        + `${rest.batches} batches · ${rest.items} items · ${rest.errors} errors`;
    case 'snapshot':
      return `tick ${rest.tick} · ${rest.characters?.length ?? 0} characters · ${rest.locations?.length ?? 0} places · seed ${rest.seed} · seq ${rest.seq}${rest.paused ? ' · paused' : ''}`;
    case 'inspect': {
      const n = rest.needs || {};
      const tr = (rest.recent_transitions || []).slice(-3).map((t) => `${t.tick}: ${t.from}→${t.to}`).join(', ');
      return `${rest.name} #${rest.id} · ${rest.state} at ${store.locationName(rest.location)} for ${rest.ticks_in_state} ticks\n`
        + `  energy ${Math.round(n.energy)} · hunger ${Math.round(n.hunger)} · social ${Math.round(n.social)}`
        + (rest.pending_plan ? `\n  plan: ${rest.pending_plan}` : '')
        + (tr ? `\n  recent: ${tr}` : '');
    }
    default:
      return JSON.stringify(rest);
  }
}

export class Console {
  constructor({ form, input, output }, { run, store, isViewer }) {
    Object.assign(this, { form, input, output, run, store, isViewer });
    this.history = [];
    this.hpos = 0;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const line = input.value;
      input.value = '';
      this.exec(line);
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowUp' && this.hpos > 0) {
        this.hpos--;
        input.value = this.history[this.hpos];
        e.preventDefault();
      } else if (e.key === 'ArrowDown') {
        this.hpos = Math.min(this.history.length, this.hpos + 1);
        input.value = this.history[this.hpos] ?? '';
        e.preventDefault();
      }
    });
    this.print('Type help for commands.', 'info');
  }

  print(text, cls) {
    const span = document.createElement('span');
    span.className = cls;
    span.textContent = `${text}\n`;
    this.output.append(span);
    while (this.output.childElementCount > 300) this.output.firstElementChild.remove();
    this.output.scrollTop = this.output.scrollHeight;
  }

  async exec(line) {
    if (!line.trim()) return;
    this.history.push(line);
    if (this.history.length > 100) this.history.shift();
    this.hpos = this.history.length;
    this.print(`› ${line}`, 'in');
    let parsed;
    try {
      parsed = parseLine(line);
    } catch (e) {
      this.print(e.message, 'err');
      return;
    }
    if (!parsed) return;
    if (parsed.local === 'help') return this.print(helpText(this.store.limits), 'info');
    if (parsed.local === 'clear') {
      this.output.textContent = '';
      return;
    }
    if (this.isViewer() && !VIEWER_COMMANDS.includes(parsed.cmd)) {
      this.print(`\`${parsed.cmd}\` needs an operator token; a viewer may run ${VIEWER_COMMANDS.join(', ')}`, 'err');
      return;
    }
    try {
      const data = await this.run(parsed.cmd, parsed.args);
      this.print(summarize(parsed.cmd, data, this.store), 'ok');
    } catch (e) {
      this.print(`error${e.code ? ' ' : ': '}${errorText(e)}`, 'err');
    }
  }
}
