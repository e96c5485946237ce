// The sidebar's lists and its self footer.
//
// Lists: "Text rooms", "Voice channels" (voice and stage rooms, each with who is in it, a green
// ring on whoever speaks, muted / deafened icons) and "Direct messages" (named after the other
// person, with their presence dot). Each link has an unread badge ("99+" past the server's
// cap) that the link's accessible name includes, and a mention badge ("@2") beside it.
//
// Self footer: avatar with presence dot, name, connection line, a status picker (online, away,
// do not disturb → presence:update), and while in voice the channel's name with mic, deafen
// and disconnect buttons.

import { avatar, h, icon } from '../dom.js';
import { PRESENCE_LABEL, presenceDot } from './members.js';
import { KIND_ICON } from './room.js';
import { micButtons, moderationOf, replaceKeepingFocus, withModeration } from './voice.js';

/** "3", or "99+" when the server's count was capped. */
export function badgeText(room) {
  if (!room.unread) return '';
  return room.unreadCapped || room.unread > 99 ? '99+' : String(room.unread);
}

export function badge(room) {
  const text = badgeText(room);
  const mentions = room.mentions > 99 ? '99+' : String(room.mentions || '');
  const mentionBadge = room.mentions ? h('span', { class: 'badge badge-mention', dataset: { mentions } },
    h('span', { 'aria-hidden': 'true', text: `@${mentions}` }),
    h('span', { class: 'sr-only', text: `, ${mentions} mention${room.mentions === 1 ? '' : 's'}` })) : null;
  if (!text) return mentionBadge;
  return [mentionBadge, h('span', { class: 'badge', dataset: { unread: text } },
    h('span', { 'aria-hidden': 'true', text }),
    h('span', { class: 'sr-only', text: `, ${text} unread` }))];
}

function roomLink(room, { current, me, store }) {
  const isPrivate = room.meta && !room.meta.settings?.isPublic && room.kind !== 'dm';
  const name = room.displayName(me);
  let lead;
  if (room.kind === 'dm') {
    const peer = [...room.members.values()].find((m) => m.userId !== me.id);
    const status = peer ? store.statusOf(peer.userId, peer.online ? 'online' : 'offline') : 'offline';
    lead = h('span', { class: 'member-avatar dm-avatar' }, avatar(peer?.userId || name, name, 'avatar-xs'),
      presenceDot(status));
  } else {
    lead = icon(KIND_ICON[room.kind] || 'hash', 'room-icon');
  }
  return h('a', {
    class: `room-link${room.unread ? ' unread' : ''}`, href: `/rooms/${room.id}`,
    'aria-current': current ? 'page' : null, title: room.meta?.description || null,
    dataset: { roomId: room.id, kind: room.kind },
  }, lead, h('span', { class: 'room-link-name', text: name }),
  isPrivate ? h('span', { class: 'tag', text: 'private' }) : null,
  badge(room));
}

export function voiceMembers(room, me, store = null) {
  const people = [...room.voiceMembers.values()].sort((a, b) => a.username.localeCompare(b.username))
    .map((p) => withModeration(p, store ? moderationOf(store, room, p.userId) : null));
  if (!people.length) return null;
  return h('ul', { class: 'side-voice', 'aria-label': `In ${room.name}` },
    ...people.map((p) => h('li', {
      class: `side-voice-member${p.speaking && !p.muted ? ' speaking' : ''}`, dataset: { userId: p.userId },
    },
    h('span', { class: 'voice-avatar' }, avatar(p.userId, p.username, 'avatar-xs')),
    h('span', { class: 'side-voice-name', text: p.userId === me.id ? `${p.username} (you)` : p.username }),
    p.muted && !p.serverMuted ? h('span', { class: 'voice-icon muted', title: 'Muted' }, icon('micOff')) : null,
    p.deafened ? h('span', { class: 'voice-icon deafened', title: 'Deafened' }, icon('headphonesOff')) : null,
    p.serverMuted ? h('span', { class: 'voice-icon server', title: 'Muted by a moderator' }, icon('micOff')) : null,
    h('span', { class: 'sr-only', text: [p.muted && 'muted', p.deafened && 'deafened', p.serverMuted && 'server muted']
      .filter(Boolean).join(', ') }))));
}

/** The three lists, as elements for the sidebar's scroll area. */
export function roomSections({ store, route, me }) {
  // A community's channels are listed under the community (views/community-side.js).
  const all = [...store.rooms.values()].filter((r) => !r.communityId);
  const current = (room) => route.name === 'room' && route.id === room.id;
  const text = all.filter((r) => r.kind === 'text');
  const voice = all.filter((r) => r.isVoice);
  const dms = all.filter((r) => r.kind === 'dm');
  const section = (id, title, rooms, extra) => [
    h('h2', { class: 'sidebar-title', id }, title),
    h('ul', { class: 'room-list', 'aria-labelledby': id },
      ...rooms.map((room) => h('li', {}, roomLink(room, { current: current(room), me, store }),
        extra ? extra(room) : null))),
  ];
  const out = [];
  if (!all.length) {
    out.push(h('h2', { class: 'sidebar-title', id: 'your-rooms' }, 'Your rooms'),
      h('p', { class: 'room-list-empty' },
        'No rooms yet. Browse public rooms, join one with a code, or create your own.'));
    return out;
  }
  if (text.length || !voice.length) out.push(...section('side-text', 'Text rooms', text));
  if (voice.length) out.push(...section('side-voice', 'Voice channels', voice, (room) => voiceMembers(room, me)));
  if (dms.length) out.push(...section('side-dms', 'Direct messages', dms));
  return out;
}

/** The self footer. `social` sets the status, `voice` runs the voice buttons. */
export function renderSelfFooter(el, { user, store, social, voice, shell }) {
  const v = store.voice;
  const room = v ? store.room(v.channelId) : null;
  const shown = store.statusOf(user.id, store.myStatus);
  // Only when something shown changed (speaking events come often; an open status menu
  // must not be rebuilt under the pointer).
  const sig = [user.username, shown, store.myStatus, v?.channelId, v?.state, v?.muted, v?.deafened, v?.noMic,
    v?.call, room?.displayName(user)].join('|');
  if (el.dataset.sig === sig) return;
  el.dataset.sig = sig;
  const picker = h('select', {
    class: 'status-select', id: 'status-select', 'aria-label': 'Set your status', 'data-key': 'status',
    onchange: async (e) => {
      try {
        await social.setStatus(e.target.value);
      } catch (err) {
        shell.toast(`Could not change your status: ${err.message}`);
      }
    },
  }, ...['online', 'away', 'dnd'].map((s) => h('option', { value: s, selected: store.myStatus === s }, PRESENCE_LABEL[s])));
  picker.value = store.myStatus;
  const voiceBar = v ? h('div', { class: 'self-voice', role: 'group', 'aria-label': 'Voice connection' },
    h('div', { class: 'self-voice-text' },
      h('span', { class: `self-voice-state ${v.state}`, text: v.state === 'connected' ? 'Voice connected' : 'Connecting…' }),
      h('a', { class: 'self-voice-room', href: `/rooms/${v.channelId}`, text: room ? room.displayName(user) : 'voice' })),
    h('button', {
      class: 'icon-btn', type: 'button', 'data-key': 'disconnect', title: 'Disconnect',
      'aria-label': v.call ? 'Hang up' : 'Disconnect from voice',
      onclick: () => (v.call ? shell.calls?.hangup() : voice.leave()),
    }, icon('phoneOff'))) : null;
  replaceKeepingFocus(el, [
    voiceBar,
    h('div', { class: 'self-row' },
      h('span', { class: 'member-avatar' }, avatar(user.id, user.username, 'avatar-sm'), presenceDot(shown)),
      h('div', { class: 'self-names' },
        h('span', { class: 'self-name', text: user.username }),
        h('span', { class: 'self-status', 'data-self-status': '' })),
      ...micButtons(voice, store, { small: true }),
      picker,
      h('button', {
        class: 'icon-btn', type: 'button', 'aria-label': 'Sign out', title: 'Sign out', 'data-key': 'signout',
        onclick: () => shell.logout(),
      }, icon('logout'))),
  ]);
}
