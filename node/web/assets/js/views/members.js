// The member list of a room, online members first. "Online" is what the server reports: the
// member has a connection subscribed to this room right now (GET /rooms/:id/members, the
// room:join ack, and room:user_joined / room:user_left).
//
// Later: richer presence (idle, do-not-disturb, custom status) changes presenceOf() and the
// dot's class; voice participants with speaking rings get their own section.

import { avatar, h } from '../dom.js';

/** The presence shown for a member: 'online' | 'offline'. */
export function presenceOf(member) {
  return member.online ? 'online' : 'offline';
}

export function renderMembers(container, room, meId) {
  const members = [...room.members.values()].sort((a, b) =>
    Number(b.online) - Number(a.online)
    || (a.role === 'admin' ? -1 : 0) - (b.role === 'admin' ? -1 : 0)
    || a.username.localeCompare(b.username));
  const online = members.filter((m) => m.online);
  const offline = members.filter((m) => !m.online);
  const section = (title, list) => (list.length ? [
    h('h3', { class: 'members-title', text: `${title} — ${list.length}` }),
    h('ul', { class: 'member-list', 'aria-label': title }, ...list.map((m) => memberRow(m, meId))),
  ] : []);
  container.replaceChildren(
    ...(room.membersLoaded ? [] : [h('p', { class: 'members-loading' }, 'Loading members…')]),
    ...section('Online', online),
    ...section('Offline', offline));
}

function memberRow(m, meId) {
  const presence = presenceOf(m);
  return h('li', { class: `member ${presence}`, dataset: { userId: m.userId } },
    h('span', { class: 'member-avatar' },
      avatar(m.userId, m.username, 'avatar-sm'),
      h('span', { class: `presence-dot ${presence}`, 'aria-hidden': 'true' })),
    h('span', { class: 'member-name', text: m.username }),
    m.userId === meId ? h('span', { class: 'member-you', text: '(you)' }) : null,
    m.role === 'admin' ? h('span', { class: 'tag tag-admin', text: 'admin' }) : null,
    h('span', { class: 'sr-only', text: `, ${presence}` }));
}
