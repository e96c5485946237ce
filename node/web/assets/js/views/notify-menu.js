// The room header's bell: this user's notification setting for the room (all messages, only
// mentions, nothing, or the default) and a mute for an hour, eight hours or until turned
// back on. PUT /rooms/:id/notification-settings; the effective setting comes back with the
// next GET /users/me/rooms (kept on the room as `notifications`).

import { h, icon } from '../dom.js';

const LEVELS = [
  [null, 'Default'],
  ['all', 'All messages'],
  ['mentions', 'Only mentions'],
  ['none', 'Nothing'],
];
const MUTES = [[60 * 60_000, 'Mute for 1 hour'], [8 * 60 * 60_000, 'Mute for 8 hours']];

export function notifyMenu({ room, api, toast, refresh }) {
  const own = () => room.notifications?.override || {};
  const muted = () => (room.notifications?.muteUntil || 0) > Date.now();
  const menu = h('div', { class: 'notify-menu', role: 'menu', 'aria-label': 'Notifications for this room', hidden: true });
  const button = h('button', {
    class: 'icon-btn notify-btn', type: 'button', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
    'aria-label': 'Notification settings', title: 'Notifications',
    onclick: () => (menu.hidden ? open() : close()),
  }, icon(muted() || room.notifications?.level === 'none' ? 'bellOff' : 'bell'));

  async function set(change) {
    close();
    const next = { level: own().level ?? null, muteUntil: own().muteUntil ?? null, ...change };
    try {
      const saved = await api.setNotifications({ roomId: room.id }, next);
      room.notifications = { ...(room.notifications || {}), override: saved };
      refresh?.();
    } catch (err) {
      toast(`Could not change notifications: ${err.message}`);
    }
  }

  function item(label, checked, onclick) {
    return h('button', {
      class: 'notify-item', type: 'button', role: checked === null ? 'menuitem' : 'menuitemradio',
      'aria-checked': checked === null ? null : String(checked), onclick,
    }, label);
  }

  function open() {
    const level = own().level ?? null;
    menu.replaceChildren(
      ...LEVELS.map(([value, label]) => item(label, level === value, () => set({ level: value }))),
      h('hr', { class: 'notify-sep' }),
      ...(muted() ? [item('Unmute', null, () => set({ muteUntil: null }))]
        : MUTES.map(([ms, label]) => item(label, null, () => set({ muteUntil: Date.now() + ms })))),
    );
    menu.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    menu.querySelector('button')?.focus();
  }

  function close() {
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
  }
  menu.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { close(); button.focus(); }
  });
  return h('div', { class: 'notify-wrap' }, button, menu);
}
