// The roles editor (a dialog): the community's roles, highest first, on the left; the chosen
// one's name, colour, position and a toggle for every permission on the right. "New role"
// creates one; @everyone changes only its permissions. The server decides what this user may
// change (roles ranked below their highest, permissions they hold) and its refusals are shown.

import { clearErrors, field, h, icon, showFormError } from '../dom.js';
import { PERMISSIONS, permissionLabel } from '../community.js';
import { confirmDialog, modal } from './dialog.js';

/** 0xRRGGBB → "#rrggbb". */
export function colorHex(n) { return `#${(Number(n) || 0).toString(16).padStart(6, '0')}`; }

export function rolesDialog({ c, communities, toast }) {
  return modal({
    title: `Roles of ${c.name}`,
    className: 'dialog-wide roles-dialog',
    build: (close) => {
      /** The role being edited (a role object), or 'new'. */
      let selected = null;
      const list = h('ul', { class: 'roles-list', 'aria-label': 'Roles' });
      const editor = h('div', { class: 'roles-editor' });
      const roles = () => [...c.roles].sort((a, b) => b.position - a.position);

      function renderList() {
        list.replaceChildren(...roles().map((r) => h('li', {},
          h('button', {
            class: 'role-pick', type: 'button', 'aria-pressed': String(selected !== 'new' && selected?.id === r.id),
            dataset: { roleId: r.id },
            onclick: () => { selected = r; renderList(); renderEditor(); },
          }, h('span', { class: 'role-dot', dataset: { color: colorHex(r.color) } }),
          h('span', { text: r.everyone ? '@everyone' : r.name })))),
        h('li', {}, h('button', {
          class: 'btn btn-small btn-ghost role-new', type: 'button',
          onclick: () => { selected = 'new'; renderList(); renderEditor(); },
        }, icon('plus'), 'New role')));
        paintDots(list);
      }

      function renderEditor() {
        if (!selected) {
          editor.replaceChildren(h('p', { class: 'muted' }, 'Pick a role to edit, or create a new one.'));
          return;
        }
        const role = selected === 'new' ? null : selected;
        const everyone = Boolean(role?.everyone);
        const perms = new Set(role?.permissions || []);
        const form = h('form', { class: 'form role-form', novalidate: true, 'aria-label': role ? `Edit ${role.name}` : 'New role' },
          everyone ? h('p', { class: 'field-hint' }, '@everyone is every member. Only its permissions can change.') : null,
          everyone ? null : field({ label: 'Role name', name: 'name', attrs: {
            required: true, maxlength: '100', autocomplete: 'off', value: role?.name ?? '',
          } }),
          everyone ? null : h('div', { class: 'field-row' },
            field({ label: 'Colour', name: 'color', type: 'color', attrs: { value: colorHex(role?.color ?? 0x99aab5) } }),
            field({ label: 'Position', name: 'position', type: 'number', attrs: {
              min: '1', inputmode: 'numeric', value: String(role?.position ?? 1),
            }, hint: 'Higher outranks lower.' })),
          h('fieldset', { class: 'field perm-grid' },
            h('legend', {}, 'Permissions'),
            ...PERMISSIONS.map((p) => h('div', { class: 'check' },
              h('input', { type: 'checkbox', id: `perm-${p}`, name: 'perm', value: p, checked: perms.has(p) }),
              h('label', { for: `perm-${p}` }, permissionLabel(p)))),
            h('p', { class: 'field-error', 'data-error-for': 'permissions', role: 'alert' })),
          h('p', { class: 'form-error', role: 'alert' }),
          h('div', { class: 'dialog-actions' },
            role && !everyone ? h('button', {
              class: 'btn btn-danger', type: 'button', onclick: () => remove(role),
            }, 'Delete role') : null,
            h('button', { class: 'btn btn-primary', type: 'submit' }, role ? 'Save role' : 'Create role')));
        form.addEventListener('submit', async (e) => {
          e.preventDefault();
          clearErrors(form);
          const data = new FormData(form);
          const body = { permissions: data.getAll('perm').map(String) };
          if (!everyone) {
            body.name = String(data.get('name') || '').trim();
            body.color = parseInt(String(data.get('color') || '#000000').slice(1), 16) || 0;
            body.position = Number(data.get('position')) || 1;
          }
          const submit = form.querySelector('[type="submit"]');
          submit.disabled = true;
          try {
            const saved = role ? await communities.updateRole(c.id, role.id, body)
              : await communities.createRole(c.id, body);
            selected = c.roles.find((r) => r.id === saved.id) || saved;
            toast(role ? `Role ${saved.everyone ? '@everyone' : saved.name} saved.` : `Role ${saved.name} created.`);
            renderList();
            renderEditor();
          } catch (err) {
            (showFormError(form, err) || submit).focus();
          } finally {
            submit.disabled = false;
          }
        });
        editor.replaceChildren(form);
      }

      async function remove(role) {
        const ok = await confirmDialog({ title: 'Delete role', danger: true, confirmLabel: 'Delete role',
          message: `Delete the role ${role.name}? Members who have it lose it.` });
        if (!ok) return;
        try {
          await communities.deleteRole(c.id, role.id);
          selected = null;
          renderList();
          renderEditor();
        } catch (err) {
          toast(`Could not delete the role: ${err.message}`);
        }
      }

      renderList();
      renderEditor();
      return h('div', { class: 'dialog-body roles-body' }, list, editor,
        h('div', { class: 'dialog-actions roles-close' },
          h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => close(null) }, 'Done')));
    },
  });
}

/** Colours from data-color (no inline styles under the CSP: a custom property instead). */
export function paintDots(root) {
  for (const dot of root.querySelectorAll('[data-color]')) dot.style.setProperty('--role-color', dot.dataset.color);
}
