// The member list of a room, grouped by presence: online (online, away, do not disturb, in a
// call) first, then offline. The dot's colour is the member's presence: what user:presence_changed
// last said, else the status in the room:join ack or GET /rooms/:id/members, else whether they
// are subscribed to the room now (`online`). Each other member has a "Message" button that opens
// (or starts) a direct conversation with them, and a "Block" / "Unblock" button.

import { avatar, h, icon } from '../dom.js';

export const PRESENCE_LABEL = {
  online: 'Online', away: 'Away', dnd: 'Do not disturb', in_call: 'In a call', offline: 'Offline',
};

/** The presence shown for a member: online | away | dnd | in_call | offline. */
export function presenceOf(member, store = null) {
  const known = store?.presence.get(member.userId)?.status;
  const status = known || member.status || (member.online ? 'online' : 'offline');
  return PRESENCE_LABEL[status] ? status : 'online';
}

/** A presence dot (decorative; the label goes in text beside it). */
export function presenceDot(status) {
  return h('span', { class: `presence-dot ${status}`, 'aria-hidden': 'true', dataset: { presence: status } });
}

/**
 * Renders the list. `opts.store` supplies presence; `opts.onMessage(userId)` opens a DM (no
 * button when absent).
 */
export function renderMembers(container, room, meId, opts = {}) {
  const { store = null, onMessage = null, onBlock = null } = opts;
  const withPresence = [...room.members.values()].map((m) => ({ m, presence: presenceOf(m, store) }));
  const rank = (p) => (p === 'offline' ? 1 : 0);
  withPresence.sort((a, b) => rank(a.presence) - rank(b.presence)
    || (a.m.role === 'admin' ? -1 : 0) - (b.m.role === 'admin' ? -1 : 0)
    || a.m.username.localeCompare(b.m.username));
  const online = withPresence.filter((x) => x.presence !== 'offline');
  const offline = withPresence.filter((x) => x.presence === 'offline');
  const section = (title, list) => (list.length ? [
    h('h3', { class: 'members-title', text: `${title} — ${list.length}` }),
    h('ul', { class: 'member-list', 'aria-label': title },
      ...list.map(({ m, presence }) => memberRow(m, presence, meId, room.kind === 'dm' ? null : onMessage,
        onBlock && { blocked: Boolean(store?.blocked.has(m.userId)), toggle: onBlock }))),
  ] : []);
  // Keep focus on a Message button across re-renders (presence changes often).
  const focusedUser = container.contains(document.activeElement)
    ? document.activeElement.closest('[data-user-id]')?.dataset.userId : null;
  container.replaceChildren(
    ...(room.membersLoaded ? [] : [h('p', { class: 'members-loading' }, 'Loading members…')]),
    ...section('Online', online),
    ...section('Offline', offline));
  if (focusedUser) container.querySelector(`[data-user-id="${CSS.escape(focusedUser)}"] button`)?.focus();
}

function memberRow(m, presence, meId, onMessage, block) {
  const me = m.userId === meId;
  return h('li', { class: `member ${presence}`, dataset: { userId: m.userId, presence } },
    h('span', { class: 'member-avatar' }, avatar(m.userId, m.username, 'avatar-sm'), presenceDot(presence)),
    h('span', { class: 'member-name', text: m.username }),
    me ? h('span', { class: 'member-you', text: '(you)' }) : null,
    m.role === 'admin' ? h('span', { class: 'tag tag-admin', text: 'admin' }) : null,
    h('span', { class: 'sr-only member-presence', text: `, ${PRESENCE_LABEL[presence]}` }),
    !me && onMessage ? h('button', {
      class: 'icon-btn member-dm', type: 'button', 'aria-label': `Message ${m.username}`, title: 'Message',
      onclick: () => onMessage(m.userId),
    }, icon('message')) : null,
    !me && block ? h('button', {
      class: 'link-btn member-block', type: 'button', 'aria-pressed': String(block.blocked),
      'aria-label': `${block.blocked ? 'Unblock' : 'Block'} ${m.username}`,
      text: block.blocked ? 'Unblock' : 'Block',
      onclick: () => block.toggle(m.userId, !block.blocked),
    }) : null);
}
