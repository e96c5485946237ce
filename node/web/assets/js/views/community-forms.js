// The small community forms, each in a dialog: create / edit a community (name, description,
// "require approval"), create / edit a channel or a category, and "join with an invite".
// The server's validation errors are shown by the field they name.

import { clearErrors, field, h, showFormError } from '../dom.js';
import { modal } from './dialog.js';

/** A form dialog: `fields` are its controls; `collect(form)` the request's body; `save(body)`
 *  performs it and resolves with what the dialog resolves with. */
function formDialog({ title, submitLabel, fields, collect, save, extra = null, danger = null }) {
  return modal({
    title,
    className: 'dialog-form',
    build: (close) => {
      const form = h('form', { class: 'dialog-body form', novalidate: true },
        ...fields,
        h('p', { class: 'form-error', role: 'alert' }),
        h('div', { class: 'dialog-actions' },
          danger ? h('button', {
            class: 'btn btn-danger dialog-danger', type: 'button',
            onclick: async () => { if (await danger.run()) close(danger.result ?? 'deleted'); },
          }, danger.label) : null,
          h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => close(null) }, 'Cancel'),
          h('button', { class: 'btn btn-primary', type: 'submit' }, submitLabel)));
      extra?.(form);
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        clearErrors(form);
        const submit = form.querySelector('[type="submit"]');
        submit.disabled = true;
        try {
          close(await save(collect(new FormData(form), form)));
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

function checkbox(name, label, hint, checked) {
  const id = `cb-${name}`;
  return h('div', { class: 'check' },
    h('input', { type: 'checkbox', id, name, checked, 'aria-describedby': hint ? `${id}-hint` : null }),
    h('label', { for: id }, h('span', { class: 'radio-label', text: label }),
      hint ? h('span', { class: 'radio-hint', id: `${id}-hint`, text: hint }) : null));
}

/** Create (community null) or edit a community. */
export function communityFormDialog({ community = null, save, onDelete = null }) {
  const fields = [
    field({ label: 'Community name', name: 'name', attrs: {
      required: true, maxlength: '100', autocomplete: 'off', value: community?.name ?? '', placeholder: 'e.g. Rust fans',
    } }),
    field({ label: 'Description', name: 'description', type: 'textarea', attrs: {
      maxlength: '1000', rows: '3', placeholder: 'What is it about? (optional)',
    } }),
  ];
  if (community) {
    fields.push(checkbox('requireApproval', 'Require approval to join',
      'People who use an invite ask to join; a moderator accepts or declines them.', Boolean(community.requireApproval)));
  }
  return formDialog({
    title: community ? 'Community settings' : 'Create a community',
    submitLabel: community ? 'Save changes' : 'Create community',
    fields,
    extra: (form) => { form.querySelector('textarea[name="description"]').value = community?.description ?? ''; },
    collect: (data) => {
      const body = { name: String(data.get('name') || '').trim(), description: String(data.get('description') || '') };
      if (community) body.requireApproval = data.get('requireApproval') === 'on';
      return body;
    },
    save,
    danger: onDelete,
  });
}

/** Create (channel null) or edit a channel. `categories`: [{id, name}]. */
export function channelFormDialog({ channel = null, categories, categoryId = null, save, onDelete = null }) {
  const current = channel ? channel.categoryId ?? '' : categoryId ?? '';
  const fields = [
    field({ label: 'Channel name', name: 'name', attrs: {
      required: true, maxlength: '100', autocomplete: 'off', value: channel?.name ?? '', placeholder: 'e.g. general',
    } }),
    channel ? null : field({ label: 'Channel type', name: 'kind', control: h('select', {},
      h('option', { value: 'text' }, 'Text channel'),
      h('option', { value: 'voice' }, 'Voice channel'),
      h('option', { value: 'stage' }, 'Stage')) }),
    field({ label: 'Category', name: 'categoryId', control: h('select', {},
      h('option', { value: '', selected: current === '' }, 'No category'),
      ...categories.map((c) => h('option', { value: c.id, selected: c.id === current }, c.name))) }),
    field({ label: 'Description', name: 'description', type: 'textarea', attrs: { maxlength: '500', rows: '2' } }),
    field({ label: 'Position', name: 'position', type: 'number', attrs: {
      min: '0', inputmode: 'numeric', value: channel ? String(channel.position) : '',
    }, hint: channel ? 'Lower comes first.' : 'Empty: after the last channel.' }),
    checkbox('allowGuests', 'Readable by guests', 'Signed-in people outside the community may read it.',
      Boolean(channel?.allowGuests)),
    checkbox('recordMessages', 'Keep message history',
      'Off: messages are delivered live but never stored (and files cannot be posted).', channel?.recordMessages !== false),
  ].filter(Boolean);
  return formDialog({
    title: channel ? `Edit #${channel.name}` : 'Create a channel',
    submitLabel: channel ? 'Save changes' : 'Create channel',
    fields,
    extra: (form) => { form.querySelector('textarea[name="description"]').value = channel?.description ?? ''; },
    collect: (data) => {
      const body = {
        name: String(data.get('name') || '').trim(),
        description: String(data.get('description') || ''),
        categoryId: data.get('categoryId') || null,
        allowGuests: data.get('allowGuests') === 'on',
        recordMessages: data.get('recordMessages') === 'on',
      };
      if (!channel) {
        body.kind = String(data.get('kind') || 'text');
        if (!body.categoryId) delete body.categoryId;
      }
      const pos = String(data.get('position') || '').trim();
      if (pos) body.position = Number(pos);
      return body;
    },
    save,
    danger: onDelete,
  });
}

/** Create (category null) or edit a category. */
export function categoryFormDialog({ category = null, save, onDelete = null }) {
  return formDialog({
    title: category ? `Edit ${category.name}` : 'Create a category',
    submitLabel: category ? 'Save changes' : 'Create category',
    fields: [
      field({ label: 'Category name', name: 'name', attrs: {
        required: true, maxlength: '100', autocomplete: 'off', value: category?.name ?? '',
      } }),
      field({ label: 'Position', name: 'position', type: 'number', attrs: {
        min: '0', inputmode: 'numeric', value: category ? String(category.position) : '',
      }, hint: 'Lower comes first.' }),
    ],
    collect: (data) => {
      const body = { name: String(data.get('name') || '').trim() };
      const pos = String(data.get('position') || '').trim();
      if (pos) body.position = Number(pos);
      return body;
    },
    save,
    danger: onDelete,
  });
}

/** The code of an invite link (".../invite/CODE") or a bare code. */
export function inviteCodeOf(text) {
  const t = String(text || '').trim();
  const m = /\/invite\/([A-Za-z0-9_-]+)\/?$/.exec(t);
  return m ? m[1] : t;
}

/** "Join a community": an invite code or link; resolves with the code to open. */
export function joinCommunityDialog() {
  return formDialog({
    title: 'Join a community',
    submitLabel: 'Continue',
    fields: [field({ label: 'Invite code or link', name: 'code', attrs: {
      required: true, autocomplete: 'off', placeholder: 'e.g. AB12CD34 or https://…/invite/AB12CD34',
    } })],
    collect: (data) => inviteCodeOf(data.get('code')),
    save: async (code) => {
      if (!code) {
        const err = new Error('Enter an invite code or link.');
        err.details = { field: 'code' };
        throw err;
      }
      return code;
    },
  });
}
