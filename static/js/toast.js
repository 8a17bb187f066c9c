// Visible notifications. Every server error the page receives ends up here, so a
// refused command or a dropped connection is never silent.

import { $, el } from './util.js';

const MAX_TOASTS = 5;

/**
 * Shows a toast. kind: 'error' | 'warn' | 'info' | 'ok'. Errors stay 10 s, others 4 s;
 * every toast can be dismissed by clicking it.
 */
export function toast(message, kind = 'info', title = '') {
  const box = $('toasts');
  if (!box) return;
  const node = el(
    'div',
    { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast', 'data-kind': kind },
    title ? el('strong', { text: title }) : null,
    el('span', { text: message }),
  );
  node.addEventListener('click', () => node.remove());
  box.append(node);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  setTimeout(() => node.remove(), kind === 'error' ? 10000 : 4000);
}

/** Formats an `error` object's data ({code, message}) the same way everywhere. */
export function describeError(data) {
  if (!data) return 'unknown error';
  const names = { 1001: 'invalid message', 1002: 'not allowed', 1003: 'rate limited', 1004: 'server error' };
  const name = names[data.code] ? ` (${names[data.code]})` : '';
  return `${data.code ?? ''}${name}: ${data.message ?? ''}`.trim();
}

/**
 * A failed command's text: the contract's code and message for a refusal from the
 * server (a CommandError), the plain message for anything else (timeout, no network).
 * The one formatter for every place that shows a command failure.
 */
export function errorText(e) {
  return e.code ? describeError(e.data) : e.message;
}

/** A persistent banner for conditions that need the person's action (bad token). */
export function banner(message) {
  const node = $('banner');
  if (!node) return;
  if (!message) {
    node.hidden = true;
    node.textContent = '';
    return;
  }
  node.hidden = false;
  node.textContent = message;
}
