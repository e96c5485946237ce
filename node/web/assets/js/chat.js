// The chat controller: everything that changes the store, over REST and the WebSocket.
//
// Nothing lost, nothing twice:
// - Messages are kept by id, so a message that arrives twice (replay, history page, live
//   event, ack) is stored once.
// - After every (re)connect each room is re-joined with `since` = the newest room-log `seq`
//   received (every logged event carries one: new messages, edits, deletions, reactions) and
//   the log's `epoch`, and the server replays every entry after it before the ack. When more
//   was missed than it replays, or the epoch changed (`replayTruncated`), the cached history
//   is dropped and paged again.
// - A room's history is fetched only after its subscription (or when offline), so the newest
//   page and the live stream overlap instead of leaving a gap.
// - Sends carry a nonce and show at once as "sending"; the ack (or our own message:received)
//   with that nonce replaces the optimistic copy. A send that was cut off is sent again with
//   the same nonce after the room is re-joined, and the server returns the original message
//   instead of storing a second one. Unsent messages survive a reload (localStorage). A send
//   refused with RATE_LIMITED or UNAVAILABLE (the room was moving between servers: nothing was
//   stored) is tried again after the ack's `details.retryAfterMs`; so is a refused join.
//
// Rich messages: edits (message:update), deletions (message:delete), reactions (reaction:add /
// reaction:remove, toggled), replies (replyTo on send). Acks and the live events carry the new
// state; both are applied (the same state twice changes nothing).
//
// Attachments: uploads.js (`chat.uploads`) uploads files and posts each stored file through
// send() as a `file` / `voice_note` message, an ordinary pending send from there on.
//
// The rooms this user belongs to come from GET /users/me/rooms (social.js); they are also
// remembered per browser (localStorage) so the sidebar shows at once on a reload.

import { announce, cmpId, sentence } from './dom.js';
import { RoomState } from './store.js';
import { Uploads } from './uploads.js';

const TYPING_REPEAT_MS = 3_000; // the server ends typing 6 s after the last start
const TYPING_FAILSAFE_MS = 8_000;
const PAGE = 50;
/** Wait before sending again after a timeout or unavailable storage. */
const RESEND_MS = 3_000;

export class Chat {
  #typingSentAt = new Map();

  constructor({ api, socket, store, session }) {
    this.api = api;
    this.socket = socket;
    this.store = store;
    this.session = session;
    this.me = session.user;
    this.roomsKey = `vf.rooms.${this.me.id}`;
    this.pendingKey = `vf.pending.${this.me.id}`;
    /** Attachments: attach, retry, drop, fileMeta (uploads.js). */
    this.uploads = new Uploads({ api, store, send: (...args) => this.send(...args) });
    this.onSocketOpen = (e) => {
      this.uploads.noteLimit(e.detail?.maxUploadBytes);
      this.#resubscribeAll();
    };
    this.onSocketEvent = (e) => this.#onEvent(e.detail.type, e.detail.data);
    this.onSocketState = (e) => {
      store.conn = e.detail;
      if (e.detail.state !== 'online') {
        for (const room of store.rooms.values()) room.subscribed = false;
        for (const room of store.rooms.values()) this.#clearTyping(room);
      }
      store.emit('conn', e.detail);
    };
  }

  /** Loads the remembered rooms and unsent messages, and starts listening. */
  start() {
    const { store, socket } = this;
    store.me = this.me;
    this.loadBlocks().catch(() => { /* shown unblocked until the next start */ });
    for (const saved of readJson(this.roomsKey, [])) {
      if (saved?.id && !store.rooms.has(saved.id)) {
        const room = new RoomState(saved.id, saved.meta ?? null);
        // A community's channel: community.js confirms (or drops) it once its list is read.
        room.communityId = saved.communityId ?? null;
        store.rooms.set(saved.id, room);
      }
    }
    for (const p of readJson(this.pendingKey, [])) {
      const room = store.room(p.roomId);
      if (room && p.nonce && (p.content || p.fileId)) room.pending.set(p.nonce, { ...p, state: 'queued' });
    }
    store.emit('rooms');
    socket.addEventListener('open', this.onSocketOpen);
    socket.addEventListener('event', this.onSocketEvent);
    socket.addEventListener('state', this.onSocketState);
  }

  /** Refreshes each remembered room's details one by one; drops rooms that are gone or no
   *  longer ours (when GET /users/me/rooms is not available). */
  refreshEach() {
    const { store } = this;
    for (const room of [...store.rooms.values()]) {
      this.api.room(room.id).then((meta) => {
        room.meta = meta;
        this.#saveRooms();
        store.emit('rooms');
      }).catch((e) => {
        if (e.code === 'NOT_FOUND' || e.code === 'FORBIDDEN') this.forget(room.id);
      });
    }
  }

  stop() {
    this.socket.removeEventListener('open', this.onSocketOpen);
    this.socket.removeEventListener('event', this.onSocketEvent);
    this.socket.removeEventListener('state', this.onSocketState);
  }

  // ---- rooms ----

  /** Makes a room the open one and loads what it needs. */
  async open(roomId) {
    const { store } = this;
    store.currentRoomId = roomId;
    store.emit('current', { roomId });
    const room = store.room(roomId);
    if (!room) return;
    if (!room.membersLoaded) this.loadMembers(room).catch(() => {});
    if (!room.loadedLatest && (room.subscribed || !this.socket.online)) {
      await this.loadLatest(room).catch(() => {});
    }
  }

  async loadMembers(room) {
    // Joins and leaves that arrive while the request is out are newer than its answer.
    const seen = new Map();
    (room.membersLoads ||= new Set()).add(seen);
    let list;
    try {
      list = await this.api.members(room.id);
    } finally {
      room.membersLoads.delete(seen);
    }
    room.members = new Map(list.map((m) => [m.userId, m]));
    for (const [userId, change] of seen) {
      const m = room.members.get(userId);
      room.members.set(userId, { ...(m || { userId, username: change.username, role: 'member' }), online: change.online });
    }
    room.membersLoaded = true;
    this.notePresence(list);
    this.store.emit('members', { roomId: room.id });
  }

  /** Fetches the newest page and merges it (after the live subscription, so no gap). */
  async loadLatest(room) {
    const oldestBefore = room.oldestId;
    const page = await this.api.messages(room.id, { limit: PAGE });
    for (const m of page.data) room.put(m);
    const oldestOfPage = page.data.length ? page.data[page.data.length - 1].id : null;
    // When the page did not reach back to what we already held, our oldest message is still
    // the frontier and history before it is unknown.
    const reached = !oldestBefore || !oldestOfPage || cmpId(oldestOfPage, oldestBefore) <= 0;
    if (reached) room.hasMore = page.hasMore;
    room.loadedLatest = true;
    this.store.emit('messages', { roomId: room.id, reason: 'latest' });
  }

  /** Pages back through history; resolves with whether anything was added. */
  async loadOlder(room) {
    if (!room.hasMore || room.loadingOlder || !room.loadedLatest) return false;
    room.loadingOlder = true;
    this.store.emit('messages', { roomId: room.id, reason: 'loading' });
    try {
      const page = await this.api.messages(room.id, { before: room.oldestId, limit: PAGE });
      for (const m of page.data) room.put(m);
      room.hasMore = page.hasMore;
      return page.data.length > 0;
    } finally {
      room.loadingOlder = false;
      this.store.emit('messages', { roomId: room.id, reason: 'older' });
    }
  }

  /** Creates a room (the creator is its admin) and adds it to the sidebar. */
  async createRoom(fields) {
    const meta = await this.api.createRoom(fields);
    this.adopt(meta);
    return meta.id;
  }

  /** Joins by code (private or public) and adds the room. */
  async joinByCode(code) {
    const reply = await this.api.joinByCode(code.trim().toUpperCase());
    const meta = await this.api.room(reply.roomId);
    const room = this.adopt(meta);
    room.members = new Map(reply.participants.map((m) => [m.userId, m]));
    room.membersLoaded = true;
    return meta.id;
  }

  /** Opens (creating the first time) the direct-message room with a user. */
  /** Loads the block list (messages of blocked people are collapsed). */
  async loadBlocks() {
    const list = await this.api.blocks();
    this.store.blocked = new Set(list.map((b) => b.userId));
    this.store.emit('blocks');
  }

  /** Blocks or unblocks a user. */
  async setBlocked(userId, blocked) {
    if (blocked) await this.api.block(userId);
    else await this.api.unblock(userId);
    if (blocked) this.store.blocked.add(userId);
    else this.store.blocked.delete(userId);
    this.store.emit('blocks');
  }

  async openDm(userId) {
    const meta = await this.api.openDm(userId);
    this.adopt(meta);
    return meta.id;
  }

  async updateRoom(roomId, fields) {
    const meta = await this.api.updateRoom(roomId, fields);
    const room = this.store.room(roomId);
    if (room) room.meta = meta;
    this.#saveRooms();
    this.store.emit('rooms');
    return meta;
  }

  async leaveRoom(roomId) {
    await this.api.leaveRoom(roomId);
    this.socket.request('room:leave', { roomId }).catch(() => {});
    this.forget(roomId);
  }

  async deleteRoom(roomId) {
    await this.api.deleteRoom(roomId);
    this.forget(roomId);
  }

  isMember(roomId) { return this.store.rooms.has(roomId); }

  /**
   * For a room not in this browser's list (a link, another device): when the server lists this
   * user as a member, add it and resolve true.
   */
  async rememberIfMember(meta) {
    const members = await this.api.members(meta.id);
    if (!members.some((m) => m.userId === this.me.id)) return false;
    const room = this.adopt(meta);
    room.members = new Map(members.map((m) => [m.userId, m]));
    room.membersLoaded = true;
    return true;
  }

  // ---- messages ----

  /**
   * Shows the message at once and sends it (now, or once connected). `replyTo`: the message
   * (as held in the store) this one answers.
   */
  send(roomId, content, { replyTo = null, type = 'text', file = null } = {}) {
    const room = this.store.room(roomId);
    if (!room || (!file && !content.trim())) return; // an attachment's caption may be empty
    const nonce = newNonce();
    const p = {
      nonce, roomId, content, state: 'sending', error: null,
      createdAt: new Date().toISOString(), userId: this.me.id, username: this.me.username,
      replyTo: replyTo ? {
        id: replyTo.id, userId: replyTo.userId, username: replyTo.username,
        snippet: (replyTo.content || '').slice(0, 100),
      } : null,
    };
    if (file) {
      p.type = type;
      p.fileId = file.id;
      p.file = { id: file.id, name: file.name, size: file.size, mimeType: file.mimeType };
    }
    room.pending.set(nonce, p);
    this.#savePending();
    this.stopTyping(roomId);
    this.store.emit('messages', { roomId, reason: 'sent' });
    this.#trySend(room, p);
  }

  /** Sends a failed message again (same nonce: never a duplicate). */
  retry(roomId, nonce) {
    const room = this.store.room(roomId);
    const p = room?.pending.get(nonce);
    if (p) this.#trySend(room, p);
  }

  discard(roomId, nonce) {
    const room = this.store.room(roomId);
    if (room?.pending.delete(nonce)) {
      this.#savePending();
      this.store.emit('messages', { roomId, reason: 'discard' });
    }
  }

  /** Deletes a message for everyone (message:delete; over REST while offline). */
  async deleteMessage(roomId, messageId) {
    if (this.socket.online) await this.socket.request('message:delete', { messageId, roomId });
    else await this.api.deleteMessage(messageId);
    this.#tombstone(roomId, messageId);
  }

  /** Replaces the text of one of this user's messages (message:update). */
  async editMessage(roomId, messageId, content) {
    const ack = await this.socket.request('message:update', { messageId, content, roomId });
    this.#applyUpdate(ack.message);
  }

  /** Adds this user's `emoji` to a message, or takes it back when it is there already. */
  async toggleReaction(roomId, messageId, emoji) {
    const room = this.store.room(roomId);
    const m = room?.messages.get(messageId);
    if (!m || m.deleted) return;
    const mine = (m.reactions || []).some((r) => r.emoji === emoji && (r.userIds || []).includes(this.me.id));
    const ack = await this.socket.request(mine ? 'reaction:remove' : 'reaction:add', { messageId, emoji, roomId });
    if (ack?.reactions) this.#applyReactions(room, messageId, ack.reactions);
  }

  /** Whether this user may delete a message: its author (not of a server notice), or an
   *  admin of the room (any message, notices too). */
  canDelete(room, message) {
    if (message.deleted) return false;
    if (room.roleOf(this.me.id) === 'admin') return true;
    return message.type !== 'system' && message.userId === this.me.id;
  }

  /** Whether this user may edit a message: their own text message, not deleted (attachments
   *  and their captions are not edited here). */
  canEdit(message) {
    return !message.deleted && (message.type ?? 'text') === 'text' && message.userId === this.me.id;
  }

  /** Remembers the presence the server reported with a member list. */
  notePresence(list) {
    let changed = false;
    for (const m of list) {
      if (!m.status) continue;
      this.store.presence.set(m.userId, { status: m.status, lastSeen: m.lastSeen });
      changed = true;
    }
    if (changed) this.store.emit('presence', {});
  }

  // ---- typing ----

  /** Call on input: sends typing:start at most every 3 s while typing goes on. */
  typing(roomId) {
    const room = this.store.room(roomId);
    if (!room?.subscribed) return;
    const last = this.#typingSentAt.get(roomId) || 0;
    if (Date.now() - last < TYPING_REPEAT_MS) return;
    this.#typingSentAt.set(roomId, Date.now());
    this.socket.request('typing:start', { roomId }).catch(() => {});
  }

  /** Call on send, blur, or when the box is emptied. */
  stopTyping(roomId) {
    if (!this.#typingSentAt.get(roomId)) return;
    this.#typingSentAt.delete(roomId);
    if (this.store.room(roomId)?.subscribed) {
      this.socket.request('typing:stop', { roomId }).catch(() => {});
    }
  }

  /** Usernames of who is typing in a room (not counting this user). */
  typingNames(room) {
    return [...room.typing.keys()]
      .filter((id) => id !== this.me.id)
      .map((id) => room.members.get(id)?.username || 'Someone');
  }

  // ---- internals ----

  async #trySend(room, p) {
    if (!this.socket.online || !room.subscribed) {
      p.state = 'queued';
      this.store.emit('messages', { roomId: room.id, reason: 'queued' });
      return; // sent after the room is re-joined
    }
    p.state = 'sending';
    p.error = null;
    this.store.emit('messages', { roomId: room.id, reason: 'sending' });
    try {
      const req = { roomId: room.id, content: p.content, nonce: p.nonce };
      if (p.replyTo?.id) req.replyTo = p.replyTo.id;
      if (p.fileId) {
        req.type = p.type || 'file';
        req.fileId = p.fileId;
      }
      const ack = await this.socket.request('message:send', req);
      this.#received(ack.message, { fromAck: true });
    } catch (e) {
      if (!room.pending.has(p.nonce)) return; // confirmed meanwhile (own message:received)
      if (['OFFLINE', 'DISCONNECTED', 'TIMEOUT', 'STORAGE_UNAVAILABLE', 'RATE_LIMITED', 'UNAVAILABLE'].includes(e.code)) {
        p.state = 'queued';
        if (['TIMEOUT', 'STORAGE_UNAVAILABLE', 'RATE_LIMITED', 'UNAVAILABLE'].includes(e.code)) {
          // Rate limited or unavailable: the ack says when to send again.
          const wait = e.code === 'RATE_LIMITED' || e.code === 'UNAVAILABLE' ? retryAfterMs(e) : RESEND_MS;
          setTimeout(() => { if (room.pending.has(p.nonce)) this.#trySend(room, p); }, wait);
        }
      } else {
        p.state = 'failed';
        p.error = sentence(e.message) || 'Not sent.';
        // In a community channel a refusal means this user's rights changed (a timeout, a
        // role, an override): community.js reads them again.
        if (room.communityId) this.store.emit('refused', { roomId: room.id, code: e.code });
      }
      this.store.emit('messages', { roomId: room.id, reason: 'send-failed' });
    }
  }

  /** After (re)connecting: join every room with `since`, then flush its unsent messages. */
  #resubscribeAll() {
    for (const room of [...this.store.rooms.values()]) this.#subscribe(room);
  }

  async #subscribe(room) {
    // Member lists come with the join only where they are shown at once (the open room, and
    // a DM's other person in the sidebar); other rooms load theirs when opened. A member of
    // fifty rooms would otherwise fetch fifty lists on every reconnect.
    const data = { roomId: room.id, members: room.kind === 'dm' || room.id === this.store.currentRoomId };
    if (room.seq !== null) {
      data.since = room.seq;
      data.epoch = room.epoch;
    }
    room.replaying = true; // replayed messages are not read out one by one
    try {
      const ack = await this.socket.request('room:join', data);
      room.replaying = false;
      room.subscribed = true;
      // Live events follow the ack; a fresh join (or a gap too big to replay) starts here.
      if (room.seq === null || ack.replayTruncated) room.seq = ack.seq;
      room.epoch = ack.epoch;
      if (data.members) {
        room.members = new Map(ack.participants.map((m) => [m.userId, m]));
        room.membersLoaded = true;
        this.notePresence(ack.participants);
        this.store.emit('members', { roomId: room.id });
      } else {
        // Whatever list we held may be stale now: the next open fetches it again.
        room.membersLoaded = false;
        if (this.store.currentRoomId === room.id) this.loadMembers(room).catch(() => {});
      }
      // Who is in the voice session now (voice channels, stages, calls); events follow.
      const hadVoice = room.voiceMembers.size > 0;
      room.voiceMembers = new Map((ack.voice || []).map((m) => [m.userId, m]));
      if (hadVoice || room.voiceMembers.size > 0) this.store.emit('voice', { roomId: room.id });
      if (!data.since && room.loadedLatest) {
        // An empty room, already fetched: what was posted while we were away was not replayed,
        // so fetch the newest page again (now that we are subscribed, without a gap).
        room.loadedLatest = false;
      }
      if (ack.replayTruncated) {
        // Missed more than the server replays: page the history again from the newest.
        room.resetHistory();
        this.store.emit('messages', { roomId: room.id, reason: 'reset' });
      }
      if (this.store.currentRoomId === room.id && !room.loadedLatest) {
        await this.loadLatest(room).catch(() => {});
      }
      for (const p of [...room.pending.values()]) {
        if (p.state !== 'failed') this.#trySend(room, p);
      }
    } catch (e) {
      if (e.code === 'FORBIDDEN' || e.code === 'ROOM_NOT_FOUND' || e.code === 'NOT_FOUND') {
        this.forget(room.id, 'You are no longer a member of this room.');
      }
      if (e.code === 'UNAVAILABLE') {
        // The room was moving between servers: join again once it has settled (a reconnect
        // meanwhile re-joins every room anyway).
        setTimeout(() => {
          if (this.socket.online && !room.subscribed && this.store.rooms.get(room.id) === room) this.#subscribe(room);
        }, retryAfterMs(e));
      }
      // Disconnected meanwhile: the next open re-joins.
    } finally {
      room.replaying = false;
    }
  }

  #onEvent(type, data) {
    const room = data?.roomId ? this.store.room(data.roomId) : null;
    // Logged room events carry their seq: the resume point moves with them.
    if (room && Number.isInteger(data.seq) && data.seq > (room.seq ?? 0)) room.seq = data.seq;
    switch (type) {
      case 'message:received':
        if (room) this.#received(data, { fromAck: false });
        break;
      case 'message:deleted':
        if (room) this.#tombstone(room.id, data.messageId);
        break;
      case 'message:updated':
        if (room) this.#applyUpdate(data);
        break;
      case 'reaction:updated':
        if (room) this.#applyReactions(room, data.messageId, data.reactions);
        break;
      case 'room:user_joined':
      case 'room:user_left':
        if (room) {
          const m = room.members.get(data.userId);
          const online = type === 'room:user_joined';
          for (const seen of room.membersLoads || []) seen.set(data.userId, { online, username: data.username });
          room.members.set(data.userId, {
            userId: data.userId, username: data.username, role: m?.role || 'member', online,
          });
          if (!online) this.#stopTypingOf(room, data.userId);
          this.store.emit('members', { roomId: room.id });
        }
        break;
      case 'user:typing':
        if (room && data.userId !== this.me.id) {
          clearTimeout(room.typing.get(data.userId));
          room.typing.set(data.userId, setTimeout(() => this.#stopTypingOf(room, data.userId), TYPING_FAILSAFE_MS));
          this.store.emit('typing', { roomId: room.id });
        }
        break;
      case 'user:stopped_typing':
        if (room) this.#stopTypingOf(room, data.userId);
        break;
      case 'room:deleted':
        if (room && !room.communityId) this.forget(room.id, 'This room was deleted by its admin.');
        break;
      case 'room:removed':
        // An admin removed this user (community channels: community.js handles it).
        if (room && !room.communityId) this.forget(room.id, 'You were removed from this room.');
        break;
      default:
        break; // pong, error, and events of later protocol versions
    }
  }

  #received(message, { fromAck }) {
    const room = this.store.room(message.roomId);
    if (!room) return;
    const added = room.put(message);
    let confirmed = false;
    if (message.nonce && message.userId === this.me.id && room.pending.delete(message.nonce)) {
      confirmed = true;
      this.#savePending();
    }
    if (message.userId !== this.me.id) this.#stopTypingOf(room, message.userId);
    if (room.membersLoaded && !room.members.has(message.userId)) this.#refreshMembersSoon(room);
    if (added || confirmed) {
      this.store.emit('messages', { roomId: room.id, reason: 'live', messageId: message.id });
      if (added && !fromAck && !room.replaying && message.userId !== this.me.id
        && this.store.currentRoomId === room.id) {
        const caption = message.content ? `: ${message.content}` : '';
        if (message.type === 'file') announce(`${message.username} sent a file${caption}`);
        else if (message.type === 'voice_note') announce(`${message.username} sent a voice note${caption}`);
        else announce(`${message.username}: ${message.content}`);
      }
    }
  }

  /** A newer state of a message (an edit): replaces the one held, if any. */
  #applyUpdate(message) {
    const room = this.store.room(message?.roomId);
    if (room && room.update(message)) {
      this.store.emit('messages', { roomId: room.id, reason: 'updated', messageId: message.id });
    }
  }

  #applyReactions(room, messageId, reactions) {
    const m = room.messages.get(messageId);
    if (!m) return;
    room.update({ ...m, reactions: reactions || [] });
    this.store.emit('messages', { roomId: room.id, reason: 'updated', messageId });
  }

  /** Someone joined over REST (no live event): reload the member list, at most once a second. */
  #refreshMembersSoon(room) {
    if (room.membersRefresh) return;
    room.membersRefresh = setTimeout(() => {
      room.membersRefresh = 0;
      if (this.store.rooms.has(room.id)) this.loadMembers(room).catch(() => {});
    }, 1000);
  }

  #tombstone(roomId, messageId) {
    const room = this.store.room(roomId);
    const m = room?.messages.get(messageId);
    if (!m || m.deleted) return;
    room.messages.set(messageId, { ...m, deleted: true, content: '', reactions: [] });
    this.store.emit('messages', { roomId, reason: 'deleted', messageId });
  }

  #stopTypingOf(room, userId) {
    if (!room.typing.has(userId)) return;
    clearTimeout(room.typing.get(userId));
    room.typing.delete(userId);
    this.store.emit('typing', { roomId: room.id });
  }

  #clearTyping(room) {
    if (!room.typing.size) return;
    for (const t of room.typing.values()) clearTimeout(t);
    room.typing.clear();
    this.store.emit('typing', { roomId: room.id });
  }

  /** Adds a room we just created or joined, subscribing at once when online. */
  adopt(meta, { communityId = null } = {}) {
    let room = this.store.room(meta.id);
    if (!room) {
      room = new RoomState(meta.id, meta);
      room.adoptedAt = Date.now();
      room.communityId = communityId;
      this.store.rooms.set(meta.id, room);
    } else if (communityId) {
      // community.js claims (or updates) a channel, perhaps adopted before as a plain room.
      room.communityId = communityId;
      room.meta = meta;
    } else if (room.communityId) {
      // A channel listed by GET /users/me/rooms too: keep what community.js knows of it.
      room.meta = { ...meta, ...room.meta };
    } else room.meta = meta;
    this.#saveRooms();
    this.store.emit('rooms');
    if (this.socket.online && !room.subscribed && !room.replaying) this.#subscribe(room);
    return room;
  }

  forget(roomId, notice) {
    const room = this.store.room(roomId);
    if (!room) return;
    this.#clearTyping(room);
    this.store.rooms.delete(roomId);
    this.#saveRooms();
    this.#savePending();
    this.store.emit('rooms', { removed: roomId, notice });
  }

  #saveRooms() {
    const list = [...this.store.rooms.values()].map((r) => ({ id: r.id, meta: r.meta, communityId: r.communityId }));
    localStorage.setItem(this.roomsKey, JSON.stringify(list));
  }

  #savePending() {
    const list = [];
    for (const room of this.store.rooms.values()) {
      for (const p of room.pending.values()) {
        list.push({ nonce: p.nonce, roomId: p.roomId, content: p.content, createdAt: p.createdAt,
          userId: p.userId, username: p.username, replyTo: p.replyTo || null,
          ...(p.fileId ? { type: p.type, fileId: p.fileId, file: p.file } : {}) });
      }
    }
    localStorage.setItem(this.pendingKey, JSON.stringify(list));
  }
}

/** How long a RATE_LIMITED or UNAVAILABLE request waits before it goes again: the ack's
 *  `retryAfterMs` (a little more, so it lands after the refill), within reason. */
function retryAfterMs(e) {
  const ms = Number(e?.details?.retryAfterMs);
  return Number.isFinite(ms) && ms >= 0 ? Math.min(ms + 20, 60_000) : RESEND_MS;
}

function readJson(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key) || 'null') ?? fallback;
  } catch {
    return fallback;
  }
}

/** A random send key (printable ASCII, well under the 64 allowed). getRandomValues works on
 *  plain http too, where crypto.randomUUID is missing. */
function newNonce() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `w-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
