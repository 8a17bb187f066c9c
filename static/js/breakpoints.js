// Breakpoints: add one in the server's condition language (its error, with where it
// went wrong, is shown next to the field), list and remove them, and when one hits
// (a `breakpoint_hit` item), a banner with the reason and the characters highlighted on
// the map. The list is the server's (`breakpoints`), refreshed after every change.

import { errorText } from './toast.js';

export class Breakpoints {
  constructor(el, store, { run, onHit }) {
    this.el = el;
    this.run = run;
    this.onHit = onHit;
    el.form?.addEventListener('submit', (e) => {
      e.preventDefault();
      this.add(el.input.value.trim());
    });
    el.list?.addEventListener('click', (e) => {
      const id = e.target?.dataset?.unbreak;
      if (id) this.remove(Number(id));
    });
    el.dismiss.addEventListener('click', () => {
      el.banner.hidden = true;
      this.onHit([]);
    });
    store.on('batch', (items) => {
      for (const item of items) {
        if (item.type === 'event_notification' && item.data?.event_type === 'breakpoint_hit') this.hit(item.data.data);
      }
    });
  }

  async add(when) {
    if (!when) return;
    try {
      await this.run('break', { when }, { quiet: true });
      this.el.error.textContent = '';
      this.el.input.value = '';
      this.refresh();
    } catch (e) {
      this.el.error.textContent = errorText(e);
    }
  }

  async remove(id) {
    try {
      await this.run('unbreak', { breakpoint_id: id }, { quiet: true });
    } catch (e) {
      this.el.error.textContent = errorText(e);
    }
    this.refresh();
  }

  async refresh() {
    if (!this.el.list) return;
    try {
      const { breakpoints } = await this.run('breakpoints', {}, { quiet: true, background: true });
      this.el.list.replaceChildren(...breakpoints.map((b) => {
        const li = document.createElement('li');
        li.dataset.testid = 'breakpoint';
        li.textContent = `#${b.breakpoint_id} ${b.when} `;
        const x = document.createElement('button');
        x.className = 'btn icon';
        x.type = 'button';
        x.dataset.unbreak = String(b.breakpoint_id);
        x.textContent = 'Remove';
        li.append(x);
        return li;
      }));
    } catch { /* offline: the next change refreshes it */ }
  }

  hit(d) {
    const who = d.characters?.length ? ` — characters ${d.characters.join(', ')}` : '';
    this.el.bannerText.textContent = `Breakpoint #${d.breakpoint_id} hit at tick ${d.tick}: ${d.when}${who}. The world is paused.`;
    this.el.banner.hidden = false;
    this.onHit(d.characters || []);
    this.refresh();
  }
}
