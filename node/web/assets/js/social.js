// Presence, read state and the room list from the server.
//
// - Rooms: GET /users/me/rooms is the truth about which rooms (and DMs) this user is in. It is
//   read at start, after every reconnect and once a minute (a DM someone else opened with us
//   appears by itself); rooms no longer listed leave the sidebar.
// - Unread badges: the counts come from that list at start (and for rooms seen for the first
//   time); afterwards every new message from someone else in a room that is not open on a
//   visible page adds one. Opening a room clears its badge. `mentionCount` seeds the mention
//   badge and `notifications` (the effective setting) is kept on the room for notifications.js.
// - Read markers: while a room is open and the page visible, `message:read` names its newest
//   message (once per message).
// - Presence: `user:presence_changed` updates store.presence; `presence:update` sets this
//   user's own status (online, away, dnd), sent again after a reconnect.

import { cmpId } from './dom.js';

const SYNC_MS = 60_000;
/** A room adopted this recently is kept even if a list fetched meanwhile lacks it. */
const FRESH_MS = 15_000;

export class Social {
  #timer = 0;
  #started = false;
  #firstSync = true;
  #listening = [];

  constructor({ api, socket, store, chat }) {
    this.api = api;
    this.socket = socket;
    this.store = store;
    this.chat = chat;
    this.me = chat.me;
  }

  start() {
    const { socket, store } = this;
    this.#started = true;
    const onOpen = () => {
      if (store.myStatus !== 'online') {
        socket.request('presence:update', { status: store.myStatus }).catch(() => {});
      }
      if (!this.#firstSync) this.syncRooms().catch(() => {});
    };
    const onEvent = (e) => this.#onEvent(e.detail.type, e.detail.data);
    const onVisible = () => this.markCurrentRead();
    socket.addEventListener('open', onOpen);
    socket.addEventListener('event', onEvent);
    document.addEventListener('visibilitychange', onVisible);
    window.addEventListener('focus', onVisible);
    this.#listening.push(
      () => socket.removeEventListener('open', onOpen),
      () => socket.removeEventListener('event', onEvent),
      () => document.removeEventListener('visibilitychange', onVisible),
      () => window.removeEventListener('focus', onVisible),
      store.on('messages', (d) => this.#onMessages(d)),
      store.on('current', () => this.markCurrentRead()),
      store.on('seen', () => this.markCurrentRead()),
    );
    this.syncRooms().catch(() => this.chat.refreshEach());
    this.#timer = setInterval(() => {
      if (document.visibilityState === 'visible') this.syncRooms().catch(() => {});
    }, SYNC_MS);
  }

  stop() {
    this.#started = false;
    clearInterval(this.#timer);
    this.#listening.forEach((f) => f());
    this.#listening = [];
  }

  /** Brings the sidebar in line with GET /users/me/rooms. */
  async syncRooms() {
    const list = await this.api.myRooms();
    if (!this.#started) return;
    const { store, chat } = this;
    const first = this.#firstSync;
    this.#firstSync = false;
    const listed = new Set();
    for (const view of list) {
      listed.add(view.id);
      if (store.knownChannels.has(view.id) && !store.room(view.id)?.communityId) continue;
      const known = store.rooms.has(view.id);
      const room = chat.adopt(view);
      room.notifications = view.notifications || null;
      if (first || !known) {
        room.mentions = store.currentRoomId === room.id ? 0 : (view.mentionCount || 0);
        room.unread = store.currentRoomId === room.id ? 0 : (view.unreadCount || 0);
        room.unreadCapped = Boolean(view.unreadCapped) && room.unread > 0;
        if (view.lastReadMessageId) room.readSent = view.lastReadMessageId;
      }
    }
    for (const room of [...store.rooms.values()]) {
      // Community channels are community.js's: visible ones need not be listed here.
      if (room.communityId) continue;
      if (!listed.has(room.id) && Date.now() - (room.adoptedAt || 0) > FRESH_MS) chat.forget(room.id);
    }
    store.emit('unread', {});
    this.markCurrentRead();
  }

  /** Sets this user's status: 'online' | 'away' | 'dnd'. */
  async setStatus(status) {
    const before = this.store.myStatus;
    this.store.myStatus = status;
    this.#setPresence(this.me.id, { status });
    try {
      await this.socket.request('presence:update', { status });
    } catch (e) {
      if (e.code !== 'OFFLINE' && e.code !== 'DISCONNECTED') {
        this.store.myStatus = before;
        this.#setPresence(this.me.id, { status: before });
        throw e;
      }
      // Offline: sent when the connection is back.
    }
  }

  /**
   * Clears the open room's badge and tells the server it was read up to its newest message:
   * only while the page is visible and focused and the list shows the newest messages (not
   * while scrolled up through history).
   */
  markCurrentRead() {
    const room = this.store.currentRoom;
    if (!room || document.visibilityState !== 'visible') return;
    if (room.unread) {
      room.unread = 0;
      room.unreadCapped = false;
      this.store.emit('unread', { roomId: room.id });
    }
    if (!document.hasFocus() || room.atBottom === false) return;
    const newest = room.newestId;
    if (!newest || !room.subscribed || room.readSent === newest) return;
    if (room.readSent && cmpId(room.readSent, newest) >= 0) return;
    room.readSent = newest;
    this.socket.request('message:read', { roomId: room.id, messageId: newest }).catch(() => {
      if (room.readSent === newest) room.readSent = null; // try again with the next message
    });
  }

  #onMessages({ roomId, reason, messageId }) {
    const room = this.store.room(roomId);
    if (!room) return;
    if (reason === 'latest' && room.id === this.store.currentRoomId) {
      this.markCurrentRead();
      return;
    }
    if (reason !== 'live' || !messageId) return;
    const m = room.messages.get(messageId);
    if (!m || m.userId === this.me.id || m.type === 'system' || m.deleted) return;
    if (room.id === this.store.currentRoomId && document.visibilityState === 'visible') {
      this.markCurrentRead();
      return;
    }
    if (room.readSent && cmpId(messageId, room.readSent) <= 0) return;
    room.unread += 1;
    this.store.emit('unread', { roomId: room.id });
  }

  #onEvent(type, data) {
    if (type === 'user:presence_changed' && data?.userId) {
      // (This user's own chosen status stays what the picker says: the server may show it as
      // away after idling, or in_call, without the choice changing.)
      this.#setPresence(data.userId, { status: data.status, lastSeen: data.lastSeen });
    }
  }

  #setPresence(userId, p) {
    this.store.presence.set(userId, p);
    this.store.emit('presence', { userId });
  }
}
