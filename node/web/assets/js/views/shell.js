// The signed-in layout: the sidebar (your rooms, browse / create, the self footer), the
// connection banner, the main area that shows one view at a time, and toasts.
//
// On a narrow screen the sidebar slides in over the content (menu button in each view's
// header; Escape or a tap outside closes it).
//
// Later: unread badges go on the room links (renderRooms), voice channels get their own
// section under "Your rooms" with their participants, and the self footer gets the mic and
// deafen buttons (renderSelf).

import { avatar, h, icon } from '../dom.js';
import { roomFormDialog } from './room-form.js';

export class Shell {
  #view = null;
  #unsub = [];
  #bannerTimer = 0;
  #tick = 0;

  constructor({ store, chat, session, router, logout }) {
    this.store = store;
    this.chat = chat;
    this.session = session;
    this.router = router;
    this.logout = logout;

    this.roomList = h('ul', { class: 'room-list', 'aria-label': 'Your rooms' });
    this.selfEl = h('div', { class: 'self' });
    this.sidebar = h('nav', { class: 'sidebar', id: 'sidebar', 'aria-label': 'Rooms' },
      h('div', { class: 'sidebar-head' },
        h('span', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'V'), 'VoiceFlow'),
        h('button', {
          class: 'icon-btn sidebar-close', type: 'button', 'aria-label': 'Close room list',
          onclick: () => this.closeSidebar(),
        }, icon('close'))),
      h('div', { class: 'sidebar-actions' },
        h('a', { class: 'side-link', href: '/rooms', 'data-nav': 'browse' }, icon('compass'), 'Browse rooms'),
        h('button', { class: 'side-link', type: 'button', onclick: () => this.createRoom() },
          icon('plus'), 'Create a room')),
      h('h2', { class: 'sidebar-title', id: 'your-rooms' }, 'Your rooms'),
      this.roomList,
      this.selfEl);
    this.banner = h('div', { class: 'conn-banner', role: 'status', 'aria-live': 'polite', hidden: true });
    this.main = h('main', { class: 'main', id: 'main', tabindex: '-1' });
    this.scrim = h('div', { class: 'scrim', onclick: () => this.closeSidebar() });
    this.toasts = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    this.el = h('div', { class: 'app' },
      h('a', { class: 'skip-link', href: '#main', onclick: (e) => { e.preventDefault(); this.focusMain(); } },
        'Skip to content'),
      this.sidebar, h('div', { class: 'main-col' }, this.banner, this.main), this.scrim, this.toasts);

    this.onKey = (e) => {
      if (e.key === 'Escape' && this.el.classList.contains('sidebar-open')) {
        this.closeSidebar();
        this.menuReturn?.focus();
      }
    };
    document.addEventListener('keydown', this.onKey);
    this.#unsub.push(
      store.on('rooms', (d) => {
        this.renderRooms();
        if (d.notice) this.toast(d.notice);
      }),
      store.on('current', () => this.renderRooms()),
      store.on('conn', () => this.renderConn()),
    );
    this.renderRooms();
    this.renderSelf();
    this.renderConn();
  }

  destroy() {
    this.#view?.destroy?.();
    this.#unsub.forEach((f) => f());
    document.removeEventListener('keydown', this.onKey);
    clearTimeout(this.#bannerTimer);
    clearInterval(this.#tick);
  }

  /** Replaces the main view. */
  show(view) {
    this.#view?.destroy?.();
    this.#view = view;
    this.main.replaceChildren(view.el);
    this.closeSidebar();
    this.renderRooms();
    view.mounted?.();
  }

  focusMain() {
    (this.#view?.focusTarget?.() || this.main).focus();
  }

  /** The menu button each view puts in its header (shown on narrow screens only). */
  menuButton() {
    const b = h('button', {
      class: 'icon-btn menu-btn', type: 'button', 'aria-label': 'Open room list',
      'aria-controls': 'sidebar', 'aria-expanded': 'false',
      onclick: () => { this.menuReturn = b; this.openSidebar(); },
    }, icon('menu'));
    return b;
  }

  openSidebar() {
    this.el.classList.add('sidebar-open');
    this.main.querySelectorAll('.menu-btn').forEach((b) => b.setAttribute('aria-expanded', 'true'));
    (this.sidebar.querySelector('[aria-current="page"]') || this.sidebar.querySelector('a, button'))?.focus();
  }

  closeSidebar() {
    this.el.classList.remove('sidebar-open');
    this.main.querySelectorAll('.menu-btn').forEach((b) => b.setAttribute('aria-expanded', 'false'));
  }

  async createRoom() {
    this.closeSidebar();
    const id = await roomFormDialog({ title: 'Create a room', submitLabel: 'Create room',
      save: (fields) => this.chat.createRoom(fields) });
    if (id) this.router.go(`/rooms/${id}`);
  }

  renderRooms() {
    const { store } = this;
    const route = this.router.route;
    const items = [...store.rooms.values()].map((room) => {
      const current = route.name === 'room' && route.id === room.id;
      const isPrivate = room.meta && !room.meta.settings?.isPublic;
      return h('li', {},
        h('a', {
          class: 'room-link', href: `/rooms/${room.id}`, 'aria-current': current ? 'page' : null,
          title: room.meta?.description || null,
        }, icon('hash', 'room-icon'), h('span', { class: 'room-link-name', text: room.name }),
        isPrivate ? h('span', { class: 'tag', text: 'private' }) : null));
    });
    if (!items.length) {
      items.push(h('li', { class: 'room-list-empty' },
        'No rooms yet. Browse public rooms, join one with a code, or create your own.'));
    }
    this.roomList.replaceChildren(...items);
    const browse = this.sidebar.querySelector('[data-nav="browse"]');
    if (route.name === 'browse') browse.setAttribute('aria-current', 'page');
    else browse.removeAttribute('aria-current');
  }

  renderSelf() {
    const user = this.session.user;
    if (!user) return;
    this.selfEl.replaceChildren(
      avatar(user.id, user.username, 'avatar-sm'),
      h('div', { class: 'self-names' },
        h('span', { class: 'self-name', text: user.username }),
        h('span', { class: 'self-status', 'data-self-status': '' })),
      // Later: mic mute and deafen toggles go here, before the sign-out button.
      h('button', {
        class: 'icon-btn', type: 'button', 'aria-label': 'Sign out', title: 'Sign out',
        onclick: () => this.logout(),
      }, icon('logout')));
    this.renderConn();
  }

  /** The banner and the footer line say whether we are connected. */
  renderConn() {
    const { state, retryAt } = this.store.conn;
    document.body.dataset.conn = state;
    const status = this.selfEl.querySelector('[data-self-status]');
    if (status) status.textContent = { online: 'Online', connecting: 'Connecting…', offline: 'Offline' }[state];
    this.el.dataset.conn = state;
    clearInterval(this.#tick);
    clearTimeout(this.#bannerTimer);
    const b = this.banner;
    b.dataset.state = state;
    if (state === 'online') {
      if (!b.hidden && b.dataset.shown === 'problem') {
        b.replaceChildren(h('span', { class: 'conn-dot' }), 'Back online.');
        b.dataset.shown = 'ok';
        this.#bannerTimer = setTimeout(() => { b.hidden = true; b.dataset.shown = ''; }, 2500);
      } else {
        b.hidden = true;
      }
      return;
    }
    if (state === 'connecting' && b.hidden) {
      // A first connect is quick; only say so if it drags on.
      this.#bannerTimer = setTimeout(() => this.#showProblem(), 1500);
      return;
    }
    this.#showProblem();
    if (state === 'offline' && retryAt) this.#tick = setInterval(() => this.#showProblem(), 1000);
  }

  #showProblem() {
    const { state, retryAt } = this.store.conn;
    const b = this.banner;
    b.hidden = false;
    b.dataset.shown = 'problem';
    if (state === 'connecting') {
      const countdown = b.querySelector('.conn-countdown');
      if (countdown) countdown.textContent = ' Reconnecting…';
      else b.replaceChildren(h('span', { class: 'conn-dot' }), 'Connecting…');
      return;
    }
    const secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    const countdown = retryAt ? ` Retrying in ${secs} s.` : ' Retrying…';
    const existing = b.querySelector('.conn-countdown');
    if (existing) {
      // Only the countdown changes each second; it is hidden from screen readers so the
      // live region is not re-read every second.
      existing.textContent = countdown;
      return;
    }
    b.replaceChildren(icon('wifiOff'),
      h('span', { class: 'conn-text' },
        h('strong', {}, 'You are offline.'),
        ' Messages you send are kept and go out when the connection is back.',
        h('span', { class: 'conn-countdown', 'aria-hidden': 'true', text: countdown })),
      h('button', { class: 'btn btn-small conn-retry', type: 'button', onclick: () => this.chat.socket.retryNow() },
        'Reconnect now'));
  }

  toast(text) {
    const t = h('div', { class: 'toast', text });
    this.toasts.append(t);
    setTimeout(() => t.remove(), 6000);
  }
}
