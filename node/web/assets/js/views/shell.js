// The signed-in layout: the sidebar (your rooms, browse / create, the self footer), the
// connection banner, the main area that shows one view at a time, and toasts.
//
// On a narrow screen the sidebar slides in over the content (menu button in each view's
// header; Escape or a tap outside closes it).
//
// The room lists (text rooms, voice channels with who is in them, direct messages; unread
// badges) and the self footer (status picker, mic and deafen while in voice) are built in
// views/sidebar.js; the call overlays in views/call.js. Left of the sidebar the community rail;
// while a community is open (a /c/… route) the sidebar lists its channels instead of the rooms
// (views/community-side.js; its menu's actions are in views/community-actions.js).

import { h, icon } from '../dom.js';
import { CallUi } from './call.js';
import { CommunityActions } from './community-actions.js';
import { communitySections, renderRail } from './community-side.js';
import { communityNotifyMenu, defaultNotifyMenu } from './notify-menu.js';
import { roomFormDialog } from './room-form.js';
import { renderSelfFooter, roomSections } from './sidebar.js';

export class Shell {
  #view = null;
  #unsub = [];
  #bannerTimer = 0;
  #tick = 0;

  /** "Enable notifications": asks for the permission on a click (never at load), then goes. */
  #permissionButton() {
    if (this.notifier?.permission !== 'default') return null;
    const button = h('button', {
      class: 'side-link notify-permission', type: 'button',
      onclick: async () => {
        const answer = await this.notifier.askPermission().catch(() => 'default');
        if (answer !== 'default') button.remove();
        if (answer === 'denied') this.toast('Notifications are blocked in this browser’s site settings.');
      },
    }, icon('bell'), 'Enable notifications');
    return button;
  }

  /** One bell per community, kept across re-renders (an open menu survives a new message). */
  #communityBell(communityId) {
    this.communityBells = this.communityBells || new Map();
    if (!this.communityBells.has(communityId)) {
      this.communityBells.set(communityId, communityNotifyMenu({
        communityId, api: this.api, toast: (t) => this.toast(t), refresh: () => this.#resync(),
      }));
    }
    return this.communityBells.get(communityId);
  }

  /** Effective settings change with a default or a community's: read the rooms again. */
  #resync() {
    this.social?.syncRooms().catch(() => {});
  }

  constructor({ store, chat, session, router, logout, social, voice, calls, communities, api, notifier = null }) {
    this.store = store;
    this.chat = chat;
    this.session = session;
    this.router = router;
    this.logout = logout;
    this.social = social;
    this.voice = voice;
    this.calls = calls;
    this.communities = communities;
    this.api = api;
    this.notifier = notifier;
    this.communityActions = new CommunityActions({ communities, api, store, chat, router, shell: this, voice });
    this.communityMenuOpen = false;

    this.roomList = h('div', { class: 'side-scroll' });
    this.communityList = h('div', { class: 'side-scroll community-side', hidden: true });
    this.rail = h('nav', { class: 'rail', 'aria-label': 'Communities' });
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
          icon('plus'), 'Create a room'),
        this.#permissionButton(),
        defaultNotifyMenu({ api, toast: (t) => this.toast(t), refresh: () => this.#resync() })),
      this.roomList,
      this.communityList,
      this.selfEl);
    this.banner = h('div', { class: 'conn-banner', role: 'status', 'aria-live': 'polite', hidden: true });
    this.main = h('main', { class: 'main', id: 'main', tabindex: '-1' });
    this.scrim = h('div', { class: 'scrim', onclick: () => this.closeSidebar() });
    this.toasts = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    this.callUi = new CallUi({ store, calls, router, shell: this });
    this.el = h('div', { class: 'app' },
      h('a', { class: 'skip-link', href: '#main', onclick: (e) => { e.preventDefault(); this.focusMain(); } },
        'Skip to content'),
      this.rail,
      this.sidebar,
      h('div', { class: 'main-col' }, this.banner, this.callUi.bar, this.main),
      this.scrim, this.toasts, this.callUi.overlay);

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
      store.on('unread', () => this.renderRooms()),
      store.on('members', () => this.renderRooms()),
      store.on('presence', () => { this.renderRooms(); this.renderSelf(); }),
      store.on('voice', () => { this.renderRooms(); this.renderSelf(); }),
      store.on('conn', () => this.renderConn()),
      store.on('moderation', () => this.renderRooms()),
      store.on('communities', (d) => {
        this.renderRooms();
        if (d.notice) this.toast(d.notice);
      }),
    );
    this.renderRooms();
    this.renderSelf();
    this.renderConn();
  }

  destroy() {
    this.#view?.destroy?.();
    this.#unsub.forEach((f) => f());
    this.callUi.destroy();
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
    const communityId = route.communityId || null;
    renderRail(this.rail, {
      store, current: communityId, api: this.api,
      onCreate: () => this.communityActions.create(),
      onJoin: () => this.communityActions.join(),
    });
    this.el.dataset.community = communityId ? 'open' : 'none';
    this.sidebar.querySelector('.sidebar-actions').hidden = Boolean(communityId);
    this.roomList.hidden = Boolean(communityId);
    this.communityList.hidden = !communityId;
    if (communityId) {
      if (this.menuCommunity !== communityId) this.communityMenuOpen = false;
      this.menuCommunity = communityId;
      const c = this.communities.get(communityId);
      const focusedKey = this.communityList.contains(document.activeElement)
        ? document.activeElement.closest('[data-room-id],[data-action]') : null;
      const key = focusedKey?.dataset.roomId ? `[data-room-id="${CSS.escape(focusedKey.dataset.roomId)}"]`
        : focusedKey?.dataset.action ? `[data-action="${CSS.escape(focusedKey.dataset.action)}"]` : null;
      const nameFocused = this.communityList.contains(document.activeElement)
        && document.activeElement.classList.contains('community-name');
      this.communityList.replaceChildren(...communitySections({
        c, store, route, me: this.chat.me, actions: this.communityActions.forCommunity(communityId),
        menuOpen: this.communityMenuOpen,
        toggleMenu: (open) => { this.communityMenuOpen = open; this.renderRooms(); },
        bell: this.#communityBell(communityId),
      }));
      if (key) this.communityList.querySelector(key)?.focus();
      else if (nameFocused) this.communityList.querySelector('.community-name')?.focus();
      this.sidebar.setAttribute('aria-label', c ? `${c.name} channels` : 'Channels');
      document.body.dataset.unread = '0';
      return;
    }
    this.sidebar.setAttribute('aria-label', 'Rooms');
    const scroll = this.roomList.scrollTop;
    const focused = this.roomList.contains(document.activeElement)
      ? document.activeElement.closest('[data-room-id]')?.dataset.roomId : null;
    this.roomList.replaceChildren(...roomSections({ store, route, me: this.chat.me }));
    this.roomList.scrollTop = scroll;
    if (focused) this.roomList.querySelector(`[data-room-id="${CSS.escape(focused)}"]`)?.focus();
    const browse = this.sidebar.querySelector('[data-nav="browse"]');
    if (route.name === 'browse') browse.setAttribute('aria-current', 'page');
    else browse.removeAttribute('aria-current');
    const unread = [...store.rooms.values()].reduce((n, r) => n + (r.unread || 0), 0);
    document.body.dataset.unread = String(unread);
  }

  renderSelf() {
    const user = this.session.user;
    if (!user) return;
    renderSelfFooter(this.selfEl, { user, store: this.store, social: this.social, voice: this.voice, shell: this });
    this.#renderConnLine();
  }

  /** The footer's connection line. */
  #renderConnLine() {
    const { state } = this.store.conn;
    const status = this.selfEl.querySelector('[data-self-status]');
    if (status) status.textContent = { online: 'Online', connecting: 'Connecting…', offline: 'Offline' }[state];
  }

  /** The banner and the footer line say whether we are connected. */
  renderConn() {
    const { state, retryAt } = this.store.conn;
    document.body.dataset.conn = state;
    this.#renderConnLine();
    this.el.dataset.conn = state;
    clearInterval(this.#tick);
    const b = this.banner;
    if (state === 'online' && b.dataset.shown === 'ok') return; // "Back online." is showing
    clearTimeout(this.#bannerTimer);
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
