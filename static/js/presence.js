// Presence: who is connected, pushed by the server (`presence`, protocol 1.1) after the
// snapshot and on every change, at most once a second; nothing is polled. Everyone
// sees the viewer and operator counts; an operator's page also gets the session list
// (label, role, transport, since when), shown when the counts are clicked.

const two = (n) => String(n).padStart(2, '0');

/** "alice · operator · ws · since 14:03:07" */
export function describeSession(s) {
  const d = new Date(s.since * 1000);
  return `${s.name} · ${s.role} · ${s.transport} · since ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export class PresenceView {
  constructor({ cell, viewers, operators, list }) {
    Object.assign(this, { cell, viewers, operators, list });
    this.data = null;
    this.dirty = false;
    cell.addEventListener('click', () => {
      if (this.data?.sessions) this.list.hidden = !this.list.hidden;
    });
  }

  /** A `presence` object's data. */
  apply(data) {
    this.data = data;
    this.dirty = true;
  }

  frame() {
    if (!this.dirty) return;
    this.dirty = false;
    const { viewers, operators, sessions } = this.data;
    this.viewers.textContent = String(viewers);
    this.operators.textContent = String(operators);
    this.cell.title = `${viewers} viewer${viewers === 1 ? '' : 's'}, ${operators} operator${operators === 1 ? '' : 's'} connected`
      + (sessions ? ' (click for who)' : '');
    this.cell.classList.toggle('has-list', Boolean(sessions));
    if (!sessions) return;
    this.list.replaceChildren(...sessions.map((s) => {
      const li = document.createElement('li');
      li.dataset.testid = 'presence-session';
      li.textContent = describeSession(s);
      return li;
    }));
  }
}
