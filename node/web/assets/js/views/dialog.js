// Modal dialogs on the native <dialog> element: it traps focus, closes on Escape, and we put
// focus back where it was when it closes.

import { h, icon } from '../dom.js';

/**
 * Opens a modal. `build(close)` returns the dialog's content; call `close(value)` to resolve
 * the returned promise with `value` (Escape and the close button resolve with null).
 */
export function modal({ title, build, className = '' }) {
  const returnFocus = document.activeElement;
  const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
  const dialog = h('dialog', { class: `dialog ${className}`.trim(), 'aria-labelledby': titleId });
  return new Promise((resolve) => {
    let result = null;
    const close = (value = null) => {
      result = value;
      if (dialog.open) dialog.close();
    };
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
      resolve(result);
    });
    dialog.addEventListener('click', (e) => {
      if (e.target === dialog) close(null); // a click on the backdrop
    });
    dialog.append(
      h('header', { class: 'dialog-head' },
        h('h2', { id: titleId, text: title }),
        h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Close', onclick: () => close(null) },
          icon('close'))),
      build(close));
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector('[autofocus], input, textarea, select, .dialog-body button');
    first?.focus();
  });
}

/** Asks a yes/no question; resolves true when confirmed. */
export async function confirmDialog({ title, message, confirmLabel = 'OK', danger = false }) {
  const answer = await modal({
    title,
    className: 'dialog-confirm',
    build: (close) => h('div', { class: 'dialog-body' },
      h('p', { text: message }),
      h('div', { class: 'dialog-actions' },
        h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => close(false) }, 'Cancel'),
        h('button', {
          class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, type: 'button', autofocus: true,
          onclick: () => close(true),
        }, confirmLabel))),
  });
  return answer === true;
}
