// The create / edit room form (in a dialog). The server's validation errors are shown by the
// field they name.
//
// Offered: name, description, member limit, public/private, and (when creating) the kind: a
// text room, a voice channel or a stage. (allowGuests, requireApproval and recordMessages work
// over the API, PROTOCOL.md; this form does not offer them yet, as the client has no screen
// for a room's join requests: approval is offered by the community screens.)

import { clearErrors, field, h, showFormError } from '../dom.js';
import { modal } from './dialog.js';

/**
 * Opens the form. `room`: the room to edit (null to create). `save(fields)` performs the
 * request and resolves with what the dialog should resolve with; its ApiError is shown.
 */
export function roomFormDialog({ title, submitLabel, room = null, save }) {
  return modal({
    title,
    className: 'dialog-form',
    build: (close) => {
      const isPublic = room ? room.settings?.isPublic !== false : true;
      const form = h('form', { class: 'dialog-body form', novalidate: true },
        field({ label: 'Room name', name: 'name', attrs: {
          required: true, maxlength: '100', autocomplete: 'off', value: room?.name ?? '',
          placeholder: 'e.g. general',
        }, hint: '3 to 100 characters.' }),
        room ? null : field({ label: 'Room type', name: 'kind', hint: 'Voice channels and stages also have a text chat.',
          control: h('select', {},
            h('option', { value: 'text' }, 'Text room'),
            h('option', { value: 'voice' }, 'Voice channel'),
            h('option', { value: 'stage' }, 'Stage (hosts, speakers and an audience)')) }),
        field({ label: 'Description', name: 'description', type: 'textarea', attrs: {
          maxlength: '500', rows: '3', placeholder: 'What is this room about? (optional)',
        } }),
        field({ label: 'Member limit', name: 'maxUsers', type: 'number', attrs: {
          min: '2', max: '500', value: String(room?.maxUsers ?? 100), inputmode: 'numeric',
        }, hint: 'From 2 to 500 members.' }),
        h('fieldset', { class: 'field field-radios' },
          h('legend', {}, 'Who can find it'),
          radio('visibility', 'public', 'Public', 'Listed in the room browser; anyone can join.', isPublic),
          radio('visibility', 'private', 'Private', 'Not listed; people join with its code.', !isPublic),
          h('p', { class: 'field-error', 'data-error-for': 'settings', role: 'alert' })),
        h('p', { class: 'form-error', role: 'alert' }),
        h('div', { class: 'dialog-actions' },
          h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => close(null) }, 'Cancel'),
          h('button', { class: 'btn btn-primary', type: 'submit' }, submitLabel)));
      form.querySelector('textarea[name="description"]').value = room?.description ?? '';
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        clearErrors(form);
        const data = new FormData(form);
        const maxUsers = Number(data.get('maxUsers'));
        const fields = {
          name: String(data.get('name') || '').trim(),
          description: String(data.get('description') || ''),
          // Out-of-range and empty values go to the server as 0 so its message names the field.
          maxUsers: Number.isFinite(maxUsers) && maxUsers >= 0 ? Math.min(Math.round(maxUsers), 100000) : 0,
          settings: { ...(room?.settings || {}), isPublic: data.get('visibility') !== 'private' },
        };
        if (!room) fields.kind = String(data.get('kind') || 'text');
        const submit = form.querySelector('[type="submit"]');
        submit.disabled = true;
        try {
          close(await save(fields));
        } catch (err) {
          (showFormError(form, err) || submit).focus();
        } finally {
          submit.disabled = false;
        }
      });
      return form;
    },
  });
}

function radio(name, value, label, hint, checked) {
  const id = `r-${name}-${value}`;
  return h('div', { class: 'radio' },
    h('input', { type: 'radio', id, name, value, checked, 'aria-describedby': `${id}-hint` }),
    h('label', { for: id }, h('span', { class: 'radio-label', text: label }),
      h('span', { class: 'radio-hint', id: `${id}-hint`, text: hint })));
}
