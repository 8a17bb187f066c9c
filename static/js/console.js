// The console: a person types `step 10`, `set_state 42 sleeping`, `inspect 3`,
// `schedule festival 20 {"x":1}` and sees the reply. Words map to the contract's
// commands and args by the command table `static/commands.json`, which `simcast ctl`
// parses with too (src/cli.rs): one grammar for both. A raw JSON command object also
// works, and `help` / `clear` are the console's own.

import TABLE from '../commands.json' with { type: 'json' };
import { STATES } from './util.js';
import { errorText } from './toast.js';
import { describeEntry } from './audit.js';

/** The command table's entries: name, aliases, role, args, help, examples. */
export const COMMANDS = TABLE.commands;

export const VIEWER_COMMANDS = COMMANDS.filter((c) => c.role === 'viewer').map((c) => c.name);

/** Every name and alias, as typed after case folding and `-` → `_`. */
const BY_WORD = new Map(COMMANDS.flatMap((c) => [c.name, ...(c.aliases || [])].map((w) => [w, c])));

/** "schedule TYPE IN_TICKS [JSON]" */
export function usageOf(c) {
  const optional = (a) => a.optional || a.console_default !== undefined;
  return [c.name, ...c.args.map((a) => (optional(a) ? `[${a.name}]` : a.name))].join(' ');
}

/** The help text, with the server's bounds (welcome.data.limits) where it has them. */
export function helpText(limits) {
  const range = (b) => (b ? `${b.min}–${b.max}` : 'see the server');
  const fill = (help) => help
    .replace('{step_ticks}', range(limits?.step_ticks))
    .replace('{tick_rate}', range(limits?.tick_rate))
    .replace('{states}', STATES.join(', '));
  const row = (left, right) => `  ${left.padEnd(30)} ${right}`;
  const rows = COMMANDS.map((c) => {
    const star = c.role === 'operator' ? '*' : '';
    const [name, ...args] = usageOf(c).split(' ');
    const aliases = c.aliases?.length ? ` (alias ${c.aliases.join(', ')})` : '';
    return row([`${name}${star}`, ...args].join(' '), fill(c.help) + aliases);
  });
  return [
    'Commands (operator-only marked *):',
    ...rows,
    row('{"cmd":"…","args":{…}}', 'any command as JSON'),
    row('clear', 'clear this output; ↑/↓ recall history'),
  ].join('\n');
}

const BOOLS = new Map([['on', true], ['true', true], ['1', true], ['off', false], ['false', false], ['0', false]]);

/** Each argument type of the table: the typed word → its value, or undefined if it is not one. */
const TYPES = {
  int: (s) => (/^\d+$/.test(s) ? Number(s) : undefined),
  id: (s) => TYPES.int(s.replace(/^#/, '')),
  number: (s) => (s !== '' && Number.isFinite(Number(s)) ? Number(s) : undefined),
  word: (s) => s,
  state: (s) => s.toLowerCase(),
  bool: (s) => BOOLS.get(s.toLowerCase()),
  json: (s) => JSON.parse(s),
};
const WANTS = { int: 'a whole number', id: 'a whole number', number: 'a number', bool: 'on or off' };

/**
 * The args of command `c` from the words after its name ({text, at}: the word and
 * where it starts in `line`), by the table's rules.
 */
function parseArgs(c, words, line) {
  const usage = `usage: ${usageOf(c)}`;
  const raw = {};
  const taken = new Set();
  for (const a of c.args) {
    if (!a.flag) continue;
    const i = words.findIndex((w, j) => !taken.has(j) && w.text === a.flag);
    if (i < 0) continue;
    if (i + 1 >= words.length) throw new Error(`${a.flag} needs ${a.name} (${usage})`);
    raw[a.key] = words[i + 1].text;
    taken.add(i).add(i + 1);
  }
  const free = words.filter((_, j) => !taken.has(j));
  let pos = 0;
  for (const a of c.args) {
    if (a.key in raw) continue;
    if (a.prefix && free[pos]?.text.toLowerCase() === a.prefix && pos + 1 < free.length) pos++;
    if (pos >= free.length) {
      if (a.console_default !== undefined) raw[a.key] = String(a.console_default);
      else if (!a.optional) throw new Error(usage);
      continue;
    }
    if (a.rest) {
      // The rest of the line as typed (JSON may hold spaces), unless a flag sits in it.
      const from = free[pos];
      raw[a.key] = [...taken].some((j) => words[j].at > from.at) ? free.slice(pos).map((w) => w.text).join(' ') : line.slice(from.at);
      pos = free.length;
    } else {
      raw[a.key] = free[pos++].text;
    }
  }
  const args = {};
  for (const a of c.args) {
    if (!(a.key in raw)) continue;
    let v;
    try {
      v = TYPES[a.type](raw[a.key]);
    } catch (e) {
      throw new Error(`${a.name} is not valid JSON: ${e.message}`);
    }
    if (v === undefined) throw new Error(`${a.name} must be ${WANTS[a.type]} (${usage})`);
    args[a.key] = v;
  }
  return args;
}

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
  const [word, ...rest] = [...text.matchAll(/\S+/g)].map((m) => ({ text: m[0], at: m.index }));
  const w = word.text.toLowerCase().replace(/-/g, '_');
  if (w === 'help' || w === '?') return { local: 'help' };
  if (w === 'clear' || w === 'cls') return { local: 'clear' };
  const c = BY_WORD.get(w);
  if (!c) throw new Error(`unknown command \`${word.text}\`; type help`);
  return { cmd: c.name, args: parseArgs(c, rest, text) };
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
