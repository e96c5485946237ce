// The community rail (left of the room list: home, one round icon per community — its initials
// when it has no icon — then "create" and "join") and, while a community is open, the
// sidebar's channel list: the community's name with a menu of what this user may do there,
// then its categories with the text, voice and stage channels this user may see (voice
// channels list who is in them). Controls this user lacks the permission for are not shown.

import { h, icon } from '../dom.js';
import { channelsIn } from '../community.js';
import { KIND_ICON } from './room.js';
import { badge, voiceMembers } from './sidebar.js';

/** "Rust Fans Club" → "RFC" (at most 3 letters). */
export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words.map((w) => w[0]) : [...(words[0] || '?')].slice(0, 2);
  return letters.slice(0, 3).join('').toUpperCase();
}

/** The rail's items. `current`: the open community's id (null on home). */
export function renderRail(el, { store, current, api, onCreate, onJoin }) {
  const item = (c) => {
    const iconEl = h('span', { class: 'rail-icon', 'aria-hidden': 'true' }, initials(c.name));
    if (c.meta?.iconId) {
      // The icon is a stored file; initials stay until it loads (and if it does not).
      api.fileSrc(c.meta.iconId).then((src) => {
        const img = h('img', { alt: '', src });
        img.addEventListener('load', () => iconEl.replaceChildren(img));
      }).catch(() => {});
    }
    const requests = c.requests.size;
    return h('li', {},
      h('a', {
        class: 'rail-item', href: `/c/${c.id}`, title: c.name, 'aria-label': c.name,
        'aria-current': current === c.id ? 'page' : null, dataset: { communityId: c.id },
      }, iconEl, requests ? h('span', { class: 'rail-badge', 'aria-hidden': 'true', text: String(requests) }) : null));
  };
  el.replaceChildren(
    h('ul', { class: 'rail-list', 'aria-label': 'Communities' },
      h('li', {}, h('a', {
        class: 'rail-item rail-home', href: '/', title: 'Rooms and direct messages',
        'aria-label': 'Rooms and direct messages', 'aria-current': current ? null : 'page',
      }, h('span', { class: 'rail-icon', 'aria-hidden': 'true' }, 'V'))),
      h('li', { class: 'rail-sep', 'aria-hidden': 'true' }),
      ...[...store.communities.values()].map(item),
      h('li', {}, h('button', {
        class: 'rail-item rail-action', type: 'button', title: 'Create a community',
        'aria-label': 'Create a community', onclick: onCreate,
      }, icon('plus'))),
      h('li', {}, h('button', {
        class: 'rail-item rail-action', type: 'button', title: 'Join a community',
        'aria-label': 'Join a community', onclick: onJoin,
      }, icon('compass')))));
}

/**
 * The open community's part of the sidebar. `actions` runs the menu's entries:
 * {invite, settings, roles, requests, audit, createChannel, createCategory, editChannel,
 * editCategory, overrides, leave, remove}.
 */
export function communitySections({ c, store, route, me, actions, menuOpen, toggleMenu, bell = null }) {
  if (!c) return [h('p', { class: 'room-list-empty', role: 'status' }, 'Loading the community…')];
  const can = (p) => c.can(p, me.id);
  const owner = c.meta?.ownerId === me.id;
  const entries = [
    can('create_invite') && ['invite', 'Invite people', 'plus'],
    can('manage_community') && ['settings', 'Community settings', 'settings'],
    can('manage_roles') && ['roles', 'Roles', 'users'],
    can('kick_members') && ['requests', `Join requests${c.requests.size ? ` (${c.requests.size})` : ''}`, 'hand'],
    can('view_audit_log') && ['audit', 'Audit log', 'file'],
    can('manage_channels') && ['createChannel', 'Create a channel', 'hash'],
    can('manage_channels') && ['createCategory', 'Create a category', 'plus'],
    !owner && ['leave', 'Leave community', 'leave'],
  ].filter(Boolean);
  const menu = h('ul', { class: 'community-menu', id: 'community-menu', hidden: !menuOpen },
    ...entries.map(([key, label, ic]) => h('li', {}, h('button', {
      class: `side-link${key === 'leave' ? ' danger' : ''}`, type: 'button', dataset: { action: key },
      onclick: () => { toggleMenu(false); actions[key](); },
    }, icon(ic), label))));
  const head = h('div', { class: 'community-head' },
    h('div', { class: 'community-head-row' },
      h('button', {
        class: 'community-name', type: 'button', 'aria-expanded': String(Boolean(menuOpen)),
        'aria-controls': 'community-menu', onclick: () => toggleMenu(!menuOpen),
      }, h('span', { text: c.name }), icon(menuOpen ? 'close' : 'arrowDown')),
      bell),
    c.timedOutUntil() ? h('p', { class: 'community-timeout', role: 'status',
      text: `You are timed out until ${c.timedOutUntil().toLocaleString()}.` }) : null);

  const current = (ch) => route.name === 'room' && route.id === ch.id;
  const channelLink = (ch) => {
    const room = store.room(ch.id);
    const manage = (ch.permissions || []).some((p) => p === 'manage_channels' || p === 'administrator');
    return h('li', { class: 'channel-item', dataset: { channelId: ch.id } },
      h('a', {
        class: `room-link${room?.unread ? ' unread' : ''}`, href: `/c/${c.id}/${ch.id}`,
        'aria-current': current(ch) ? 'page' : null, title: ch.description || null,
        dataset: { roomId: ch.id, kind: ch.kind },
      }, icon(KIND_ICON[ch.kind] || 'hash', 'room-icon'), h('span', { class: 'room-link-name', text: ch.name }),
      room ? badge(room) : null),
      manage ? h('button', {
        class: 'icon-btn channel-edit', type: 'button', 'aria-label': `Edit channel ${ch.name}`, title: 'Edit channel',
        onclick: () => actions.editChannel(ch),
      }, icon('settings')) : null,
      room && ch.kind !== 'text' ? voiceMembers(room, me, store) : null);
  };
  const out = [head, menu];
  const loose = channelsIn(c, null);
  if (loose.length) {
    out.push(h('ul', { class: 'room-list channel-list', 'aria-label': 'Channels' }, ...loose.map(channelLink)));
  }
  const cats = [...c.categories].sort((a, b) => a.position - b.position);
  for (const cat of cats) {
    const list = channelsIn(c, cat.id);
    const titleId = `cat-${cat.id}`;
    out.push(h('div', { class: 'category', dataset: { categoryId: cat.id } },
      h('h2', { class: 'sidebar-title category-title', id: titleId },
        h('span', { text: cat.name }),
        can('manage_channels') ? h('button', {
          class: 'icon-btn category-edit', type: 'button', 'aria-label': `Edit category ${cat.name}`,
          title: 'Edit category', onclick: () => actions.editCategory(cat),
        }, icon('settings')) : null,
        can('manage_channels') ? h('button', {
          class: 'icon-btn category-add', type: 'button', 'aria-label': `Create a channel in ${cat.name}`,
          title: 'Create a channel', onclick: () => actions.createChannel(cat.id),
        }, icon('plus')) : null),
      h('ul', { class: 'room-list channel-list', 'aria-labelledby': titleId }, ...list.map(channelLink))));
  }
  if (c.channelsLoaded && !c.channels.length) {
    out.push(h('p', { class: 'room-list-empty' }, can('manage_channels')
      ? 'No channels yet. Create one from the menu above.' : 'There are no channels you can see here.'));
  }
  return out;
}
