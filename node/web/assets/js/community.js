// Communities (Discord-style servers): the controller behind the rail, the channel list and the
// community dialogs. See wire/PROTOCOL.md, "communities".
//
// - The list comes from GET /communities; each community's details (roles, what this user may
//   do across it) from GET /communities/:id, and the channels this user may see (each with what
//   they may do in it) from GET /communities/:id/channels. The server filters that list, so the
//   client never decides visibility itself: it re-fetches the list whenever it may have changed
//   (after a `room:removed`, after every reconnect, after this user's own changes, when a
//   channel send is refused, when a community is opened, on `community:member_updated` (a
//   role granted or taken, a timeout, an override naming this user: a channel may have
//   appeared) and every 30 s while visible, for changes that concern everyone (a role edited).
//   The details and this user's member entry (roles, timeout) are read again with it.
// - Channels are rooms: each visible channel is adopted into the store (chat.adopt) with its
//   `communityId`, so the room view, the composer, history, typing and the voice panel work on
//   them unchanged; the ordinary room lists leave them out.
// - `room:removed` / `room:deleted` drop the channel from the list at once (then the list is
//   fetched again: a kick or ban answers 404 and the whole community goes).
// - Join requests (communities that require approval): `community:join_request` adds one to
//   the panel of those who may accept; `community:join_decided` removes it, and loads the
//   community for the requester when accepted.
// - `voice:moved`: a moderator moved this user; the old voice session is left here and the new
//   channel joined (as the Join voice button does), and the view follows.
//
// Store: store.communities (id → CommunityState, in the order the rail shows them); topic
// 'communities' (detail: {id?, removed?}).

import { cmpId } from './dom.js';

const SYNC_MS = 30_000;

/** Every permission name the server knows (PROTOCOL.md), in the order the editors show them. */
export const PERMISSIONS = [
  'view_channel', 'send_messages', 'attach_files', 'add_reactions', 'mention_everyone',
  'manage_messages', 'manage_channels', 'manage_roles', 'kick_members', 'ban_members',
  'timeout_members', 'mute_members', 'deafen_members', 'move_members', 'connect', 'speak', 'video',
  'stage_moderator', 'manage_community', 'view_audit_log', 'create_invite', 'administrator',
];

/** The permissions that mean something in a channel (what an override may allow or deny). */
export const CHANNEL_PERMISSIONS = [
  'view_channel', 'send_messages', 'attach_files', 'add_reactions', 'mention_everyone',
  'manage_messages', 'manage_channels', 'mute_members', 'deafen_members', 'move_members',
  'connect', 'speak', 'video', 'stage_moderator', 'create_invite',
];

/** "kick_members" → "Kick members". */
export function permissionLabel(name) {
  const s = name.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export class CommunityState {
  constructor(meta) {
    this.id = meta.id;
    /** GET /communities/:id (with roles and permissions), or the list's entry until loaded. */
    this.meta = meta;
    /** [{id, name, position}] and [{id, name, kind, categoryId, position, permissions…}]. */
    this.categories = [];
    this.channels = [];
    this.channelsLoaded = false;
    /** This user's member entry ({roles, timedOutUntil}), when known. */
    this.self = null;
    /** userId → {userId, username, createdAt}: pending join requests (for who may accept). */
    this.requests = new Map();
    this.requestsLoaded = false;
  }

  get name() { return this.meta?.name || 'community'; }
  get roles() { return this.meta?.roles || []; }

  /** Whether this user may do `perm` across the community (administrators and the owner may
   *  do everything). */
  can(perm, meId) {
    if (this.meta?.ownerId && this.meta.ownerId === meId) return true;
    const p = this.meta?.permissions || [];
    return p.includes('administrator') || p.includes(perm);
  }

  channel(id) { return this.channels.find((c) => c.id === id) || null; }

  /** When this user's timeout ends (a Date), or null when not timed out. */
  timedOutUntil() {
    const t = this.self?.timedOutUntil ? new Date(this.self.timedOutUntil) : null;
    return t && t.getTime() > Date.now() ? t : null;
  }
}

export class Communities {
  #timer = 0;
  #listening = [];
  /** communityId → the channel-list fetch in flight (one at a time per community). */
  #fetching = new Map();

  /** `navigate(path)` follows a voice move; `notify(text)` shows a toast. */
  constructor({ api, socket, store, chat, voice, notify = () => {}, navigate = () => {} }) {
    this.api = api;
    this.socket = socket;
    this.store = store;
    this.chat = chat;
    this.voice = voice;
    this.notify = notify;
    this.navigate = navigate;
    this.me = chat.me;
  }

  start() {
    const { socket } = this;
    let first = true;
    const onOpen = () => {
      // Whatever changed while we were away (grants, overrides, timeouts) shows in the lists.
      if (first) first = false;
      else this.loadAll().catch(() => {});
    };
    const onEvent = (e) => this.#onEvent(e.detail.type, e.detail.data);
    socket.addEventListener('open', onOpen);
    socket.addEventListener('event', onEvent);
    this.#listening.push(
      () => socket.removeEventListener('open', onOpen),
      () => socket.removeEventListener('event', onEvent),
      // A send refused in a channel: this user's rights changed (read them again).
      this.store.on('refused', ({ roomId }) => {
        const c = this.ofChannel(roomId);
        if (c) this.load(c.id).catch(() => {});
      }),
    );
    this.loadAll().catch(() => {});
    this.#timer = setInterval(() => {
      if (document.visibilityState === 'visible') {
        for (const id of this.store.communities.keys()) this.load(id).catch(() => {});
      }
    }, SYNC_MS);
  }

  stop() {
    clearInterval(this.#timer);
    this.#listening.forEach((f) => f());
    this.#listening = [];
  }

  get(id) { return this.store.communities.get(id) ?? null; }

  /** The community a channel (room id) belongs to, or null. */
  ofChannel(roomId) {
    const communityId = this.store.room(roomId)?.communityId;
    if (communityId) return this.get(communityId);
    for (const c of this.store.communities.values()) if (c.channel(roomId)) return c;
    return null;
  }

  #emit(detail = {}) { this.store.emit('communities', detail); }

  /** Reads the list of communities, then each one's details and channels. */
  async loadAll() {
    const list = await this.api.communities();
    const listed = new Set(list.map((c) => c.id));
    for (const meta of list) {
      if (!this.store.communities.has(meta.id)) this.store.communities.set(meta.id, new CommunityState(meta));
    }
    for (const id of [...this.store.communities.keys()]) if (!listed.has(id)) this.#drop(id);
    this.#emit();
    await Promise.all(list.map((c) => this.load(c.id).catch(() => {})));
  }

  /** (Re)loads one community: details, this user's member entry and the channel list. */
  async load(id) {
    let detail;
    try {
      detail = await this.api.community(id);
    } catch (e) {
      if (e.code === 'NOT_FOUND') this.#drop(id, 'You are no longer a member of that community.');
      throw e;
    }
    let c = this.get(id);
    if (!c) {
      c = new CommunityState(detail);
      this.store.communities.set(id, c);
    }
    c.meta = detail;
    this.#emit({ id });
    await Promise.all([
      this.refreshChannels(id),
      this.loadSelf(id).catch(() => {}),
      // Who may accept join requests sees how many wait (the rail's badge).
      c.can('kick_members', this.me.id) && detail.requireApproval ? this.loadRequests(id).catch(() => {}) : null,
    ]);
    return c;
  }

  /** This user's own member entry (roles, timeout): the page that starts at their id. */
  async loadSelf(id) {
    const after = (BigInt(this.me.id) - 1n).toString();
    const page = await this.api.communityMembers(id, { after, limit: 1 });
    const c = this.get(id);
    const mine = page.data.find((m) => m.userId === this.me.id);
    if (c && mine) {
      c.self = mine;
      this.noteModeration(id, mine.userId, { mute: mine.voiceMuted, deafen: mine.voiceDeafened });
      this.#emit({ id });
    }
  }

  /** Fetches the channels this user may see now, adopting new ones and dropping the rest. */
  refreshChannels(id) {
    const inflight = this.#fetching.get(id);
    if (inflight) {
      // A change may have happened after that request was answered: fetch once more after it.
      inflight.again = true;
      return inflight.promise;
    }
    const entry = { again: false, promise: null };
    entry.promise = (async () => {
      try {
        do {
          entry.again = false;
          await this.#fetchChannels(id);
        } while (entry.again);
      } finally {
        this.#fetching.delete(id);
      }
    })();
    this.#fetching.set(id, entry);
    return entry.promise;
  }

  async #fetchChannels(id) {
    let data;
    try {
      data = await this.api.channels(id);
    } catch (e) {
      if (e.code === 'NOT_FOUND') this.#drop(id, 'You are no longer a member of that community.');
      throw e;
    }
    const c = this.get(id);
    if (!c) return;
    c.categories = data.categories || [];
    c.channels = data.channels || [];
    c.channelsLoaded = true;
    const visible = new Set(c.channels.map((ch) => ch.id));
    for (const ch of c.channels) this.#adopt(c, ch);
    for (const room of [...this.store.rooms.values()]) {
      if (room.communityId === id && !visible.has(room.id)) this.#forgetChannel(room.id);
    }
    this.#emit({ id });
  }

  /** A channel as a room of the store (the chat and voice views work on it as on any room). */
  #adopt(c, ch) {
    this.store.knownChannels.add(ch.id);
    const known = this.store.room(ch.id);
    const meta = {
      ...(known?.meta || {}),
      id: ch.id, name: ch.name, description: ch.description || '', kind: ch.kind,
      settings: { isPublic: false }, communityId: c.id, categoryId: ch.categoryId ?? null,
    };
    if (known) known.channel = ch; // before adopt() emits 'rooms'
    // New or known (perhaps listed by GET /users/me/rooms first, as a plain room): adopt()
    // marks it as this community's, remembers that for the next start, and subscribes.
    const room = this.chat.adopt(meta, { communityId: c.id });
    room.channel = ch;
  }

  #forgetChannel(roomId, notice) {
    const room = this.store.room(roomId);
    if (!room) return;
    if (this.voice.inChannel(roomId)) this.voice.leave().catch(() => {});
    this.chat.forget(roomId, notice);
  }

  /** Forgets a community and its channels (left, kicked, banned, deleted). */
  #drop(id, notice) {
    const c = this.get(id);
    if (!c) return;
    this.store.communities.delete(id);
    for (const room of [...this.store.rooms.values()]) {
      if (room.communityId === id) this.#forgetChannel(room.id);
    }
    this.#emit({ removed: id, notice: notice ? `${notice.replace('that community', c.name)}` : undefined });
  }

  // ---- community ----

  async create(fields) {
    const meta = await this.api.createCommunity(fields);
    this.store.communities.set(meta.id, new CommunityState(meta));
    await this.load(meta.id);
    return meta.id;
  }

  async update(id, fields) {
    const meta = await this.api.updateCommunity(id, fields);
    const c = this.get(id);
    if (c) c.meta = { ...c.meta, ...meta };
    this.#emit({ id });
    return meta;
  }

  async remove(id) {
    await this.api.deleteCommunity(id);
    this.#drop(id);
  }

  async leave(id) {
    await this.api.leaveCommunity(id);
    this.#drop(id);
  }

  // ---- channels and categories (the list is fetched again after each change) ----

  async createChannel(id, fields) {
    const ch = await this.api.createChannel(id, fields);
    await this.refreshChannels(id);
    return ch;
  }

  async updateChannel(id, channelId, fields) {
    const ch = await this.api.updateChannel(id, channelId, fields);
    await this.refreshChannels(id);
    return ch;
  }

  async deleteChannel(id, channelId) {
    await this.api.deleteChannel(id, channelId);
    this.#removeChannelNow(channelId);
    await this.refreshChannels(id).catch(() => {});
  }

  async createCategory(id, fields) {
    const cat = await this.api.createCategory(id, fields);
    await this.refreshChannels(id);
    return cat;
  }

  async updateCategory(id, categoryId, fields) {
    const cat = await this.api.updateCategory(id, categoryId, fields);
    await this.refreshChannels(id);
    return cat;
  }

  async deleteCategory(id, categoryId) {
    await this.api.deleteCategory(id, categoryId);
    await this.refreshChannels(id);
  }

  async putOverwrite(id, channelId, targetId, body) {
    const r = await this.api.putOverwrite(id, channelId, targetId, body);
    await this.refreshChannels(id);
    return r;
  }

  async deleteOverwrite(id, channelId, targetId) {
    const r = await this.api.deleteOverwrite(id, channelId, targetId);
    await this.refreshChannels(id);
    return r;
  }

  // ---- roles (details and channels again after each: this user's own rights may change) ----

  async #afterRoles(id) {
    await this.load(id).catch(() => {});
  }

  async createRole(id, fields) {
    const role = await this.api.createRole(id, fields);
    await this.#afterRoles(id);
    return role;
  }

  async updateRole(id, roleId, fields) {
    const role = await this.api.updateRole(id, roleId, fields);
    await this.#afterRoles(id);
    return role;
  }

  async deleteRole(id, roleId) {
    await this.api.deleteRole(id, roleId);
    await this.#afterRoles(id);
  }

  async setMemberRole(id, userId, roleId, granted) {
    const r = await this.api.setMemberRole(id, userId, roleId, granted);
    if (userId === this.me.id) await this.#afterRoles(id);
    return r;
  }

  // ---- voice moderation ----

  /** Remembers a member's server mute / deafen (shown on voice tiles). */
  noteModeration(communityId, userId, { mute, deafen }) {
    const key = `${communityId}:${userId}`;
    const before = this.store.voiceModeration.get(key);
    const next = { mute: Boolean(mute), deafen: Boolean(deafen) };
    if (before && before.mute === next.mute && before.deafen === next.deafen) return;
    if (!next.mute && !next.deafen) this.store.voiceModeration.delete(key);
    else this.store.voiceModeration.set(key, next);
    if (before || next.mute || next.deafen) this.store.emit('moderation', { communityId, userId });
  }

  /** Server mute / deafen of a member ({mute?, deafen?}). */
  async moderateVoice(id, userId, fields) {
    const r = await this.api.voiceModerate(id, userId, fields);
    this.noteModeration(id, userId, r);
    return r;
  }

  // ---- invites and join requests ----

  /** Joins with an invite code; resolves with {communityId, joined, requested}. */
  async joinInvite(code) {
    const r = await this.api.joinInvite(code);
    if (!r.requested) await this.load(r.communityId);
    return r;
  }

  async loadRequests(id) {
    const c = this.get(id);
    if (!c) return;
    const all = [];
    let after;
    for (;;) {
      const page = await this.api.joinRequests(id, { after, limit: 100 });
      all.push(...page.data);
      if (!page.hasMore || !page.data.length) break;
      after = page.data[page.data.length - 1].userId;
    }
    c.requests = new Map(all.map((r) => [r.userId, r]));
    c.requestsLoaded = true;
    this.#emit({ id });
  }

  async decide(id, userId, accept) {
    await this.api.decideJoinRequest(id, userId, accept);
    this.get(id)?.requests.delete(userId);
    this.#emit({ id });
  }

  // ---- events ----

  #removeChannelNow(roomId) {
    for (const c of this.store.communities.values()) {
      const i = c.channels.findIndex((ch) => ch.id === roomId);
      if (i >= 0) {
        c.channels.splice(i, 1);
        this.#emit({ id: c.id });
      }
    }
  }

  #onEvent(type, data) {
    if (!data) return;
    switch (type) {
      case 'room:removed':
      case 'room:deleted': {
        const c = this.ofChannel(data.roomId);
        if (!c) return;
        // Gone from the list at once; then ask what is visible now (a kick or ban: nothing,
        // and the community goes too).
        this.#removeChannelNow(data.roomId);
        this.#forgetChannel(data.roomId, type === 'room:deleted'
          ? 'This channel was deleted.' : 'You can no longer see that channel.');
        if (type === 'room:removed') this.load(c.id).catch(() => {});
        else this.refreshChannels(c.id).catch(() => {});
        break;
      }
      case 'community:join_request': {
        const c = this.get(data.communityId);
        if (!c) return;
        c.requests.set(data.userId, { userId: data.userId, username: data.username, createdAt: data.createdAt });
        this.#emit({ id: c.id });
        this.notify(`${data.username} asks to join ${c.name}.`);
        break;
      }
      case 'community:join_decided': {
        if (data.userId === this.me.id) {
          if (data.accepted) {
            this.load(data.communityId).then((c) => this.notify(`You were accepted into ${c.name}.`)).catch(() => {});
          } else if (data.by !== this.me.id) { // not withdrawn by this user
            this.notify('Your request to join was declined.');
          }
          return;
        }
        const c = this.get(data.communityId);
        if (c?.requests.delete(data.userId)) this.#emit({ id: c.id });
        break;
      }
      case 'voice:moved':
        this.#moved(data);
        break;
      case 'community:member_updated':
        // What this user may do there changed: details, own entry and channels again.
        if (data.userId === this.me.id && this.get(data.communityId)) {
          this.load(data.communityId).catch(() => {});
        }
        break;
      case 'voice:moderated': {
        const before = this.store.voiceModeration.get(`${data.communityId}:${data.userId}`) || {};
        this.noteModeration(data.communityId, data.userId, data);
        if (data.userId !== this.me.id) return;
        const name = this.get(data.communityId)?.name || 'the community';
        if (Boolean(before.mute) !== Boolean(data.mute)) {
          this.notify(data.mute ? `A moderator muted you in ${name}.` : `A moderator unmuted you in ${name}.`);
        }
        if (Boolean(before.deafen) !== Boolean(data.deafen)) {
          this.notify(data.deafen ? `A moderator deafened you in ${name}.` : `A moderator undeafened you in ${name}.`);
        }
        break;
      }
      default:
        break;
    }
  }

  async #moved({ channelId, toChannelId }) {
    if (this.voice.inChannel(channelId) || !toChannelId) await this.voice.leave().catch(() => {});
    if (!toChannelId) {
      this.notify('A moderator disconnected you from voice.');
      return;
    }
    const c = this.ofChannel(toChannelId) || this.ofChannel(channelId);
    if (c && !this.store.room(toChannelId)) await this.refreshChannels(c.id).catch(() => {});
    const room = this.store.room(toChannelId);
    this.notify(`A moderator moved you to ${room ? room.name : 'another channel'}.`);
    if (c) this.navigate(`/c/${c.id}/${toChannelId}`);
    try {
      await this.voice.join(toChannelId);
    } catch (e) {
      this.notify(`Could not join voice: ${e.message}`);
    }
  }
}

/** Channels of a category (or of none: categoryId null), by position then id. */
export function channelsIn(c, categoryId) {
  return c.channels.filter((ch) => (ch.categoryId ?? null) === categoryId)
    .sort((a, b) => a.position - b.position || cmpId(a.id, b.id));
}

/** Whether this user may do `perm` in a channel (its `permissions` from the server). */
export function canIn(channel, perm) {
  const p = channel?.permissions || [];
  return p.includes('administrator') || p.includes(perm);
}
