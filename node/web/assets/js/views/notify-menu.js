// Notification settings menus (a bell and its menu): all messages, only mentions, nothing, or
// inherit; and a mute for an hour, eight hours or until turned back on.
//
// - `notifyMenu`: the room header's bell, PUT /rooms/:id/notification-settings; the effective
//   setting comes back with the next GET /users/me/rooms (kept on the room as `notifications`).
// - `defaultNotifyMenu`: the sidebar's "Notification defaults", PUT
//   /users/me/notification-settings (what every room and community without its own uses).
// - `communityNotifyMenu`: the community header's bell, PUT
//   /communities/:id/notification-settings (what its channels without their own use).
// The last two read the current setting from GET /users/me/notification-settings when opened.

import { h, icon } from '../dom.js';

const LEVELS = [
  ['all', 'All messages'],
  ['mentions', 'Only mentions'],
  ['none', 'Nothing'],
];
const MUTES = [[60 * 60_000, 'Mute for 1 hour'], [8 * 60 * 60_000, 'Mute for 8 hours']];

/** A bell for one scope: `load()` gives its own setting `{level, muteUntil}`, `save(next)`
 *  stores one and gives it back; `inherit` names the unset level; `refresh()` after a change. */
function scopeMenu({ label, title, name = title, inherit, load, save, toast, refresh, off = () => false, text = null }) {
  let own = {};
  const muted = () => (own.muteUntil || 0) > Date.now();
  const menu = h('div', { class: 'notify-menu', role: 'menu', 'aria-label': label, hidden: true });
  const button = h('button', {
    class: text ? 'side-link notify-btn' : 'icon-btn notify-btn', type: 'button', 'aria-haspopup': 'menu',
    'aria-expanded': 'false', 'aria-label': text ? null : name, title,
    onclick: () => (menu.hidden ? open() : close()),
  }, icon(off() ? 'bellOff' : 'bell'), text);

  async function set(change) {
    close();
    const next = { level: own.level ?? null, muteUntil: own.muteUntil ?? null, ...change };
    try {
      own = (await save(next)) || next;
      refresh?.();
    } catch (err) {
      toast(`Could not change notifications: ${err.message}`);
    }
  }

  function item(itemLabel, checked, onclick) {
    return h('button', {
      class: 'notify-item', type: 'button', role: checked === null ? 'menuitem' : 'menuitemradio',
      'aria-checked': checked === null ? null : String(checked), onclick,
    }, itemLabel);
  }

  async function open() {
    try {
      own = (await load()) || {};
    } catch (err) {
      toast(`Could not read notification settings: ${err.message}`);
      return;
    }
    const level = own.level ?? null;
    menu.replaceChildren(
      ...[[null, inherit], ...LEVELS].map(([value, shown]) => item(shown, level === value, () => set({ level: value }))),
      h('hr', { class: 'notify-sep' }),
      ...(muted() ? [item('Unmute', null, () => set({ muteUntil: null }))]
        : MUTES.map(([ms, shown]) => item(shown, null, () => set({ muteUntil: Date.now() + ms })))),
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

export function notifyMenu({ room, api, toast, refresh }) {
  return scopeMenu({
    label: 'Notifications for this room', title: 'Notifications', name: 'Notification settings',
    inherit: 'Default', toast, refresh,
    off: () => (room.notifications?.muteUntil || 0) > Date.now() || room.notifications?.level === 'none',
    load: () => room.notifications?.override || {},
    save: async (next) => {
      const saved = await api.setNotifications({ roomId: room.id }, next);
      room.notifications = { ...(room.notifications || {}), override: saved };
      return saved;
    },
  });
}

/** The user's default, for every room and community without a setting of its own. */
export function defaultNotifyMenu({ api, toast, refresh }) {
  return scopeMenu({
    label: 'Default notifications', title: 'Notification defaults', text: 'Notification defaults',
    inherit: 'Not set (all messages)', toast, refresh,
    load: async () => (await api.notificationSettings()).default,
    save: (next) => api.setNotifications(null, next),
  });
}

/** A community's setting, for its channels without a setting of their own. */
export function communityNotifyMenu({ communityId, api, toast, refresh }) {
  return scopeMenu({
    label: 'Notifications for this community', title: 'Community notifications', inherit: 'Default',
    toast, refresh,
    load: async () => (await api.notificationSettings()).communities.find((c) => c.id === communityId) || {},
    save: (next) => api.setNotifications({ communityId }, next),
  });
}
