// Two community pages: the audit log (/c/:id/audit: newest first, filtered by action and by
// actor, "Load older entries" pages on with `nextBefore`) and the join requests
// (/c/:id/requests: accept or decline each; new ones arrive live with community:join_request).

import { avatar, formatFull, h, icon } from '../dom.js';

export const AUDIT_ACTIONS = [
  'community.update', 'role.create', 'role.update', 'role.delete', 'member.role_add', 'member.role_remove',
  'member.kick', 'member.ban', 'member.unban', 'member.timeout', 'invite.create', 'invite.revoke',
  'channel.create', 'channel.update', 'channel.delete', 'channel.overwrite.update', 'channel.overwrite.delete',
  'category.create', 'category.update', 'category.delete',
];

function page(title, shell, ...body) {
  return h('section', { class: 'view community-page', 'aria-labelledby': 'page-title' },
    h('header', { class: 'view-head' }, shell.menuButton(), icon('file', 'head-icon'),
      h('h1', { id: 'page-title', class: 'room-title', text: title })),
    h('div', { class: 'community-page-body' }, ...body));
}

export function auditView({ c, api, shell, me }) {
  document.title = `Audit log · ${c.name} · VoiceFlow`;
  /** userId → username, from the member list (the log names actors and targets by id). */
  const names = new Map();
  const rows = h('ol', { class: 'audit-list', 'aria-label': 'Audit log entries' });
  const status = h('p', { class: 'muted', role: 'status' });
  const action = h('select', { id: 'audit-action', name: 'action' }, h('option', { value: '' }, 'All actions'),
    ...AUDIT_ACTIONS.map((a) => h('option', { value: a }, a)));
  const actor = h('select', { id: 'audit-actor', name: 'actor' }, h('option', { value: '' }, 'Anyone'));
  const older = h('button', { class: 'btn btn-ghost', type: 'button', hidden: true, onclick: () => load(false) }, 'Load older entries');
  let nextBefore = null;
  let gen = 0;

  const name = (id) => (id ? names.get(id) || c.roles.find((r) => r.id === id)?.name
    || c.channels.find((ch) => ch.id === id)?.name || id : '');

  async function load(reset) {
    const g = reset ? ++gen : gen;
    if (reset) {
      nextBefore = null;
      rows.replaceChildren();
    }
    status.textContent = 'Loading…';
    older.hidden = true;
    try {
      const res = await api.auditLog(c.id, { before: nextBefore || undefined, action: action.value || undefined,
        actor: actor.value || undefined, limit: 50 });
      if (g !== gen) return;
      for (const e of res.data) rows.append(entry(e));
      nextBefore = res.nextBefore || null;
      older.hidden = !res.hasMore;
      status.textContent = rows.childElementCount ? '' : 'No entries.';
    } catch (err) {
      status.textContent = `Could not load the audit log: ${err.message}`;
    }
  }

  function entry(e) {
    const detail = [];
    if (e.before !== undefined && e.before !== null) detail.push(`before: ${JSON.stringify(e.before)}`);
    if (e.after !== undefined && e.after !== null) detail.push(`after: ${JSON.stringify(e.after)}`);
    return h('li', { class: 'audit-entry', dataset: { action: e.action, actorId: e.actorId } },
      avatar(e.actorId, name(e.actorId), 'avatar-sm'),
      h('div', { class: 'audit-main' },
        h('p', { class: 'audit-line' },
          h('strong', { text: name(e.actorId) }), ' ', h('code', { class: 'audit-action', text: e.action }),
          e.targetId ? [' → ', h('span', { class: 'audit-target', text: name(e.targetId) })] : null),
        e.reason ? h('p', { class: 'audit-reason', text: `Reason: ${e.reason}` }) : null,
        detail.length ? h('p', { class: 'audit-detail', text: detail.join(' · ').slice(0, 400) }) : null,
        h('time', { class: 'audit-time', datetime: e.createdAt, text: formatFull(new Date(e.createdAt)) })));
  }

  action.addEventListener('change', () => load(true));
  actor.addEventListener('change', () => load(true));
  (async () => {
    let after;
    for (let i = 0; i < 10; i++) {
      const res = await api.communityMembers(c.id, { after, limit: 1000 });
      for (const m of res.data) names.set(m.userId, m.username || m.userId);
      if (!res.hasMore || !res.data.length) break;
      after = res.data[res.data.length - 1].userId;
    }
    // Banned people are no longer members: their names come from the ban list.
    if (c.can('ban_members', me.id)) {
      const bans = await api.bans(c.id).catch(() => ({ data: [] }));
      for (const b of bans.data) if (!names.has(b.userId) && b.username) names.set(b.userId, b.username);
    }
    actor.append(...[...names].sort((a, b) => a[1].localeCompare(b[1])).map(([id, n]) => h('option', { value: id }, n)));
  })().catch(() => {}).finally(() => load(true));

  const el = page(`Audit log · ${c.name}`, shell,
    h('div', { class: 'audit-filters' },
      h('div', { class: 'field' }, h('label', { for: 'audit-action' }, 'Action'), action),
      h('div', { class: 'field' }, h('label', { for: 'audit-actor' }, 'Actor'), actor)),
    status, rows, older);
  return { el };
}

export function requestsView({ c, communities, store, shell }) {
  document.title = `Join requests · ${c.name} · VoiceFlow`;
  const list = h('ul', { class: 'request-list', 'aria-label': 'Join requests' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');

  function render() {
    const reqs = [...c.requests.values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
    status.textContent = reqs.length ? '' : 'No pending requests.';
    list.replaceChildren(...reqs.map((r) => h('li', { class: 'request', dataset: { userId: r.userId } },
      avatar(r.userId, r.username, 'avatar-sm'),
      h('span', { class: 'request-name', text: r.username }),
      h('time', { class: 'audit-time', datetime: r.createdAt, text: formatFull(new Date(r.createdAt)) }),
      h('button', {
        class: 'btn btn-small btn-primary', type: 'button', 'aria-label': `Accept ${r.username}`,
        onclick: () => decide(r, true),
      }, 'Accept'),
      h('button', {
        class: 'btn btn-small btn-ghost', type: 'button', 'aria-label': `Decline ${r.username}`,
        onclick: () => decide(r, false),
      }, 'Decline'))));
  }

  async function decide(r, accept) {
    try {
      await communities.decide(c.id, r.userId, accept);
      shell.toast(`${r.username} was ${accept ? 'accepted' : 'declined'}.`);
    } catch (err) {
      shell.toast(`Could not do that: ${err.message}`);
    }
  }

  const unsub = store.on('communities', (d) => { if (d.id === c.id) render(); });
  communities.loadRequests(c.id).then(render).catch((err) => { status.textContent = `Could not load requests: ${err.message}`; });
  const el = page(`Join requests · ${c.name}`, shell,
    h('p', { class: 'field-hint' }, c.meta?.requireApproval
      ? 'People who used an invite wait here until a moderator accepts them.'
      : 'Joins do not need approval now (Community settings → Require approval).'),
    status, list);
  return { el, destroy: unsub };
}
