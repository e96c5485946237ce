// The client's state: the rooms this user belongs to, each with its messages (deduplicated by
// id, kept in id order), unsent messages (by nonce), members, who is typing, unread counts and
// who is in its voice channel; user presence; the voice connection and the call. Views read it
// and subscribe to topics; the controllers (chat.js, uploads.js, voice.js, calls.js) change it.
//
// Topics: 'rooms' (list or a room's details changed), 'messages' / 'members' / 'typing' /
// 'uploads' (detail: {roomId}), 'unread' (detail: {roomId}), 'presence' (detail: {userId}), 'voice'
// (the voice connection or a channel's participants changed; detail: {roomId}), 'call' (the
// 1:1 call changed), 'conn' (connection state), 'current' (the open room changed), 'seen'
// (the open room's newest messages came into view).

import { cmpId } from './dom.js';

export class RoomState {
  constructor(id, meta = null) {
    this.id = id;
    /** The room as GET /rooms/:id returns it (null until known). */
    this.meta = meta;
    /** id → message (MessageView), and the ids in ascending order. */
    this.messages = new Map();
    this.ids = [];
    /** nonce → unsent message {nonce, roomId, content, state: sending|queued|failed, error,
     *  type?, fileId?, file?}. */
    this.pending = new Map();
    /** Files being uploaded to this room (or whose upload failed), in the order picked:
     *  id → {id, name, size, kind: file|voice_note, sent, state: uploading|failed, error,
     *  retryable}. Each becomes a pending message once stored. */
    this.uploads = new Map();
    /** Settles when the uploads picked so far have been posted (or failed): keeps posts in
     *  the order the files were picked. */
    this.uploadChain = Promise.resolve();
    /** Whether older history may exist before ids[0] (unknown counts as yes). */
    this.hasMore = true;
    this.loadingOlder = false;
    /** The newest page of history has been fetched since the cache was last reset. */
    this.loadedLatest = false;
    /** userId → {userId, username, role, online}. */
    this.members = new Map();
    this.membersLoaded = false;
    /** userId → timer that clears a typing indicator the server never ended. */
    this.typing = new Map();
    /** Subscribed over the current WebSocket connection (room:join acked). */
    this.subscribed = false;
    /** A room:join is in flight (its replayed messages are arriving). */
    this.replaying = false;
    /** The newest room-log seq received (null until the first join), and its epoch:
     *  a re-join asks the server to replay everything after it. */
    this.seq = null;
    this.epoch = null;
    /** Messages from others not read yet (shown as a badge); capped at 100 by the server. */
    this.unread = 0;
    this.unreadCapped = false;
    /** The newest message id this client told the server it read (message:read). */
    this.readSent = null;
    /** The open message list shows the newest messages (not scrolled up). */
    this.atBottom = true;
    /** userId → voice participant {userId, username, muted, deafened, speaking, role?}, from
     *  voice:user_joined / voice:user_left / voice:state while subscribed (voice and stage). */
    this.voiceMembers = new Map();
    /** The community of a channel (community.js), or null for an ordinary room or a DM. */
    this.communityId = null;
    /** A channel's entry of GET /communities/:id/channels (with this user's `permissions`). */
    this.channel = null;
  }

  get name() { return this.meta?.name ?? 'room'; }
  /** 'text' | 'voice' | 'stage' | 'dm'. */
  get kind() { return this.meta?.kind || 'text'; }
  get isVoice() { return this.kind === 'voice' || this.kind === 'stage'; }
  /** What the sidebar and headers call the room: for a DM ("alice, bob"), the other person. */
  displayName(me) {
    if (this.kind !== 'dm') return this.name;
    return dmPeerName(this.name, me?.username);
  }
  get newestId() { return this.ids.length ? this.ids[this.ids.length - 1] : null; }
  get oldestId() { return this.ids.length ? this.ids[0] : null; }

  /** Adds or replaces a message; returns true when it was new. */
  put(message) {
    const known = this.messages.has(message.id);
    this.messages.set(message.id, message);
    if (known) return false;
    const ids = this.ids;
    if (!ids.length || cmpId(ids[ids.length - 1], message.id) < 0) ids.push(message.id);
    else {
      let lo = 0;
      let hi = ids.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cmpId(ids[mid], message.id) < 0) lo = mid + 1;
        else hi = mid;
      }
      ids.splice(lo, 0, message.id);
    }
    return true;
  }

  /** Replaces a known message with a newer state of it (an edit, a reaction); false if the
   *  message is not loaded here (history pages bring its newest state later). */
  update(message) {
    if (!this.messages.has(message.id)) return false;
    this.messages.set(message.id, message);
    return true;
  }

  /** Forgets the cached history (after a replay gap); unsent messages stay. */
  resetHistory() {
    this.messages.clear();
    this.ids = [];
    this.hasMore = true;
    this.loadedLatest = false;
  }

  /** The role of a user here ('admin' | 'member' | null). */
  roleOf(userId) { return this.members.get(userId)?.role ?? null; }
}

export class Store extends EventTarget {
  constructor() {
    super();
    /** id → RoomState, in the order the sidebar shows them. */
    this.rooms = new Map();
    this.currentRoomId = null;
    this.conn = { state: 'connecting', retryAt: 0 };
    this.me = null;
    /** userId → {status: online|away|dnd|in_call|offline, lastSeen?} (the newest we heard). */
    this.presence = new Map();
    /** Ids of people this user blocked: their messages are collapsed (topic `blocks`). */
    this.blocked = new Set();
    /** This user's own chosen status (online | away | dnd). */
    this.myStatus = 'online';
    /** The voice connection (voice.js): null, or {channelId, state, muted, deafened,
     *  participants: Map userId → member, queue: [{userId, at}], error?}. */
    this.voice = null;
    /** The 1:1 call (calls.js): null, or {callId, roomId, state, callerId, calleeId,
     *  connectedAt?, outgoing, peerName, mine}. */
    this.call = null;
    /** id → CommunityState (community.js), in the order the rail shows them. */
    this.communities = new Map();
    /** Ids of every community channel seen: GET /users/me/rooms lists channels as plain rooms,
     *  and those must not come back into the room lists (topic 'communities'). */
    this.knownChannels = new Set();
    /** `${communityId}:${userId}` → {mute, deafen}: a moderator's server mute / deafen, as far as
     *  known (member lists, this user's own actions, voice:moderated); topic 'moderation'. */
    this.voiceModeration = new Map();
  }

  /** A user's presence status, or `fallback` when nothing was heard. */
  statusOf(userId, fallback = 'offline') {
    return this.presence.get(userId)?.status ?? fallback;
  }

  emit(topic, detail = {}) {
    this.dispatchEvent(new CustomEvent(topic, { detail }));
  }

  /** Subscribes to a topic; returns the unsubscribe function. */
  on(topic, fn) {
    const handler = (e) => fn(e.detail);
    this.addEventListener(topic, handler);
    return () => this.removeEventListener(topic, handler);
  }

  room(id) { return this.rooms.get(id) ?? null; }
  get currentRoom() { return this.room(this.currentRoomId); }
}

/** The other person of a DM named "alice, bob" (the room name lists both usernames). */
export function dmPeerName(name, myName) {
  const parts = String(name || '').split(',').map((x) => x.trim()).filter(Boolean);
  if (parts.length < 2) return name || 'Direct message';
  return parts.find((p) => p !== myName) || parts[0];
}
