// A channel's permission overrides (a dialog): the roles and members that have one, and for
// the chosen target a choice per channel permission: allow, inherit (nothing said here) or
// deny. Saving PUTs the override; "Remove override" DELETEs it. `@everyone`'s override has the
// community's id. Members are picked from the community's member list (first page).

import { h, icon } from '../dom.js';
import { CHANNEL_PERMISSIONS, permissionLabel } from '../community.js';
import { modal } from './dialog.js';

export function overridesDialog({ c, channel, communities, api, toast }) {
  return modal({
    title: `Permissions of #${channel.name}`,
    className: 'dialog-wide overrides-dialog',
    build: (close) => {
      let overwrites = [];
      let members = [];
      /** {targetId, type} being edited. */
      let target = null;
      const list = h('ul', { class: 'roles-list', 'aria-label': 'Overrides' });
      const editor = h('div', { class: 'roles-editor' });
      const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
      const roleName = (id) => {
        const r = c.roles.find((x) => x.id === id);
        return r ? (r.everyone ? '@everyone' : r.name) : 'unknown role';
      };
      const nameOf = (o) => (o.type === 'role' ? roleName(o.targetId)
        : members.find((m) => m.userId === o.targetId)?.username || `member ${o.targetId}`);

      const addSelect = h('select', { 'aria-label': 'Add an override for' },
        h('option', { value: '' }, 'Add a role or member…'));

      async function load() {
        const [ow, page] = await Promise.all([api.overwrites(c.id, channel.id), api.communityMembers(c.id, { limit: 200 })]);
        overwrites = ow.overwrites || [];
        members = page.data;
        status.textContent = '';
        renderList();
        renderEditor();
      }

      function renderList() {
        list.replaceChildren(...overwrites.map((o) => h('li', {}, h('button', {
          class: 'role-pick', type: 'button', dataset: { targetId: o.targetId },
          'aria-pressed': String(target?.targetId === o.targetId),
          onclick: () => { target = { targetId: o.targetId, type: o.type }; renderList(); renderEditor(); },
        }, icon(o.type === 'role' ? 'users' : 'at'), h('span', { text: nameOf(o) })))));
        const have = new Set(overwrites.map((o) => o.targetId));
        addSelect.replaceChildren(h('option', { value: '' }, 'Add a role or member…'),
          h('optgroup', { label: 'Roles' }, ...c.roles.filter((r) => !have.has(r.id))
            .map((r) => h('option', { value: `role:${r.id}` }, r.everyone ? '@everyone' : r.name))),
          h('optgroup', { label: 'Members' }, ...members.filter((m) => !have.has(m.userId))
            .map((m) => h('option', { value: `member:${m.userId}` }, m.username || m.userId))));
      }
      addSelect.addEventListener('change', () => {
        const [type, targetId] = addSelect.value.split(':');
        if (!targetId) return;
        target = { targetId, type };
        renderList();
        renderEditor();
      });

      function renderEditor() {
        if (!target) {
          editor.replaceChildren(h('p', { class: 'muted' }, 'Pick an override, or add one for a role or a member.'));
          return;
        }
        const existing = overwrites.find((o) => o.targetId === target.targetId);
        const allow = new Set(existing?.allow || []);
        const deny = new Set(existing?.deny || []);
        const name = nameOf({ ...target });
        const rows = CHANNEL_PERMISSIONS.map((p) => {
          const value = allow.has(p) ? 'allow' : deny.has(p) ? 'deny' : 'inherit';
          return h('div', { class: 'ow-row', role: 'radiogroup', 'aria-label': permissionLabel(p) },
            h('span', { class: 'ow-name', text: permissionLabel(p) }),
            ...['deny', 'inherit', 'allow'].map((v) => h('label', { class: `ow-opt ow-${v}` },
              h('input', { type: 'radio', name: `ow-${p}`, value: v, checked: v === value }),
              h('span', { text: { deny: 'Deny', inherit: 'Inherit', allow: 'Allow' }[v] }))));
        });
        const error = h('p', { class: 'form-error', role: 'alert' });
        const form = h('form', { class: 'form ow-form', 'aria-label': `Override for ${name}` },
          h('h3', { class: 'ow-title', text: `${target.type === 'role' ? 'Role' : 'Member'}: ${name}` }),
          h('div', { class: 'ow-rows' }, ...rows),
          error,
          h('div', { class: 'dialog-actions' },
            existing ? h('button', { class: 'btn btn-danger', type: 'button', onclick: remove }, 'Remove override') : null,
            h('button', { class: 'btn btn-primary', type: 'submit' }, 'Save override')));
        form.addEventListener('submit', async (e) => {
          e.preventDefault();
          error.textContent = '';
          const data = new FormData(form);
          const body = { type: target.type, allow: [], deny: [] };
          for (const p of CHANNEL_PERMISSIONS) {
            const v = data.get(`ow-${p}`);
            if (v === 'allow') body.allow.push(p);
            else if (v === 'deny') body.deny.push(p);
          }
          try {
            await communities.putOverwrite(c.id, channel.id, target.targetId, body);
            toast(`Override for ${name} saved.`);
            await load();
          } catch (err) {
            error.textContent = err.message;
          }
        });
        async function remove() {
          try {
            await communities.deleteOverwrite(c.id, channel.id, target.targetId);
            target = null;
            toast(`Override for ${name} removed.`);
            await load();
          } catch (err) {
            error.textContent = err.message;
          }
        }
        editor.replaceChildren(form);
      }

      load().catch((err) => { status.textContent = `Could not load the overrides: ${err.message}`; });
      return h('div', { class: 'dialog-body roles-body' },
        h('div', { class: 'ow-side' }, list, addSelect), h('div', {}, status, editor),
        h('div', { class: 'dialog-actions roles-close' },
          h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => close(null) }, 'Done')));
    },
  });
}
