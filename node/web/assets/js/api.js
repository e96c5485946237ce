// The REST client for /api/v1 (see wire/PROTOCOL.md). Every call returns the whole success
// envelope's `data` (or the envelope, for paged lists) and throws ApiError with the server's
// code, message and details (details.field names the field of a validation error).
// Attachments: uploads with progress, a file's details, its bytes (as a Blob) and a URL media
// elements can load it from.

import { AuthExpired } from './session.js';

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export class Api {
  constructor(session) {
    this.session = session;
  }

  /**
   * One request. Authenticated calls carry the access token; a 401 refreshes the session once
   * and retries, so an expired token never reaches the user.
   */
  async request(method, path, { body, auth = true, retried = false, reason } = {}) {
    const headers = { accept: 'application/json' };
    // A moderator's reason goes to the community's audit log with the change.
    // Header values are Latin-1 only: other characters become "?" rather than failing the call.
    if (reason) headers['x-audit-log-reason'] = reason.slice(0, 512).replace(/[^\x20-\x7e\xa0-\xff]/g, '?');
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (auth) headers.authorization = `Bearer ${await this.#token()}`;
    let res;
    try {
      res = await fetch(`/api/v1${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, 'NETWORK', 'Cannot reach the server. Check your connection.');
    }
    const json = await res.json().catch(() => null);
    if (res.status === 401 && auth && !retried) {
      await this.#refreshOr401();
      return this.request(method, path, { body, auth, retried: true, reason });
    }
    if (!res.ok || !json || json.success !== true) throw errorOf(res.status, json);
    return json;
  }

  /** The access token, refreshed first when it is about to expire. */
  async #token() {
    try {
      return await this.session.accessToken();
    } catch (e) {
      throw toApiError(e);
    }
  }

  async #refreshOr401() {
    try {
      await this.session.refresh();
    } catch (e) {
      throw toApiError(e);
    }
  }

  async #data(method, path, opts) {
    return (await this.request(method, path, opts)).data;
  }

  // ---- accounts ----
  register(fields) { return this.#data('POST', '/auth/register', { body: fields, auth: false }); }
  login(email, password) {
    return this.#data('POST', '/auth/login', { body: { email, password }, auth: false });
  }
  verify() { return this.#data('GET', '/auth/verify'); }
  logout(refreshToken) { return this.#data('POST', '/auth/logout', { body: { refreshToken } }); }
  // ---- Web Push ----
  vapidPublicKey() { return this.#data('GET', '/push/vapid-public-key', { auth: false }); }
  pushSubscribe(subscription) { return this.#data('POST', '/push/subscriptions', { body: subscription }); }
  pushUnsubscribe(endpoint) { return this.#data('DELETE', '/push/subscriptions', { body: { endpoint } }); }
  me() { return this.#data('GET', '/users/me'); }
  /** Every room this user is a member of (DMs too), with role, unreadCount and unreadCapped. */
  myRooms() { return this.#data('GET', '/users/me/rooms'); }

  // ---- rooms ----
  /** A page of public rooms: {data, total, page, limit, hasMore}. */
  listRooms(page = 1, limit = 20) { return this.request('GET', `/rooms?page=${page}&limit=${limit}`); }
  room(id) { return this.#data('GET', `/rooms/${enc(id)}`); }
  createRoom(fields) { return this.#data('POST', '/rooms', { body: fields }); }
  updateRoom(id, fields) { return this.#data('PATCH', `/rooms/${enc(id)}`, { body: fields }); }
  deleteRoom(id) { return this.#data('DELETE', `/rooms/${enc(id)}`); }
  /** {roomId, participants}. */
  joinByCode(code) { return this.#data('POST', `/rooms/${enc(code)}/join`, { body: {} }); }
  leaveRoom(id) { return this.#data('POST', `/rooms/${enc(id)}/leave`, { body: {} }); }
  members(id) { return this.#data('GET', `/rooms/${enc(id)}/members`); }
  /** The direct-message room with a user (created the first time): a room of kind "dm". */
  openDm(userId) { return this.#data('POST', '/dms', { body: { userId } }); }
  /** People this user blocked: [{userId, username, createdAt}]. */
  blocks() { return this.#data('GET', '/users/me/blocks'); }
  block(userId) { return this.#data('PUT', `/users/me/blocks/${enc(userId)}`); }
  unblock(userId) { return this.#data('DELETE', `/users/me/blocks/${enc(userId)}`); }
  /** Privacy settings: {contact: everyone | shared_room | nobody}. */
  settings() { return this.#data('GET', '/users/me/settings'); }
  mentions({ before, limit = 50 } = {}) {
    return this.request('GET', `/users/me/mentions?limit=${limit}${before ? `&before=${enc(before)}` : ''}`);
  }
  notificationSettings() { return this.#data('GET', '/users/me/notification-settings'); }
  /** scope: null (the default), {roomId} or {communityId}; setting: {level, muteUntil}. */
  setNotifications(scope, setting) {
    const path = scope?.roomId ? `/rooms/${enc(scope.roomId)}/notification-settings`
      : scope?.communityId ? `/communities/${enc(scope.communityId)}/notification-settings`
        : '/users/me/notification-settings';
    return this.#data('PUT', path, { body: setting });
  }
  updateSettings(fields) { return this.#data('PATCH', '/users/me/settings', { body: fields }); }

  // ---- messages ----
  /** Newest first: {data, hasMore}. */
  messages(roomId, { before, limit = 50 } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before) q.set('before', before);
    return this.request('GET', `/rooms/${enc(roomId)}/messages?${q}`);
  }
  deleteMessage(id) { return this.#data('DELETE', `/messages/${enc(id)}`); }
  /** Message search: {data: [{messageId, roomId, roomName, username, createdAt, snippet,
   * highlights}], partial, unavailableRooms}. */
  search({ q, roomId, limit = 25 }) {
    const params = new URLSearchParams({ q, limit: String(limit) });
    if (roomId) params.set('roomId', roomId);
    return this.request('GET', `/search?${params}`);
  }

  // ---- communities (see community.js) ----
  communities() { return this.#data('GET', '/communities'); }
  /** The community with `roles` and `permissions` (what this user may do across it). */
  community(id) { return this.#data('GET', `/communities/${enc(id)}`); }
  createCommunity(fields) { return this.#data('POST', '/communities', { body: fields }); }
  updateCommunity(id, fields) { return this.#data('PATCH', `/communities/${enc(id)}`, { body: fields }); }
  deleteCommunity(id) { return this.#data('DELETE', `/communities/${enc(id)}`); }
  leaveCommunity(id) { return this.#data('DELETE', `/communities/${enc(id)}/members/me`); }
  /** A page of members by user id: {data: [{userId, username, roles, timedOutUntil, …}], hasMore};
   *  with `prefix`, those whose name starts so, by name, and `nextAfter` (the next `after`). */
  communityMembers(id, { after, limit = 100, prefix } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (after) q.set('after', after);
    if (prefix) q.set('prefix', prefix);
    return this.request('GET', `/communities/${enc(id)}/members?${q}`);
  }
  /** {categories, channels}: what this user may see, each channel with its `permissions`. */
  channels(id) { return this.#data('GET', `/communities/${enc(id)}/channels`); }
  createChannel(id, fields) { return this.#data('POST', `/communities/${enc(id)}/channels`, { body: fields }); }
  updateChannel(id, channelId, fields) {
    return this.#data('PATCH', `/communities/${enc(id)}/channels/${enc(channelId)}`, { body: fields });
  }
  deleteChannel(id, channelId) { return this.#data('DELETE', `/communities/${enc(id)}/channels/${enc(channelId)}`); }
  createCategory(id, fields) { return this.#data('POST', `/communities/${enc(id)}/categories`, { body: fields }); }
  updateCategory(id, categoryId, fields) {
    return this.#data('PATCH', `/communities/${enc(id)}/categories/${enc(categoryId)}`, { body: fields });
  }
  deleteCategory(id, categoryId) { return this.#data('DELETE', `/communities/${enc(id)}/categories/${enc(categoryId)}`); }
  overwrites(id, channelId) {
    return this.#data('GET', `/communities/${enc(id)}/channels/${enc(channelId)}/overwrites`);
  }
  putOverwrite(id, channelId, targetId, body) {
    return this.#data('PUT', `/communities/${enc(id)}/channels/${enc(channelId)}/overwrites/${enc(targetId)}`, { body });
  }
  deleteOverwrite(id, channelId, targetId) {
    return this.#data('DELETE', `/communities/${enc(id)}/channels/${enc(channelId)}/overwrites/${enc(targetId)}`);
  }
  roles(id) { return this.#data('GET', `/communities/${enc(id)}/roles`); }
  createRole(id, fields) { return this.#data('POST', `/communities/${enc(id)}/roles`, { body: fields }); }
  updateRole(id, roleId, fields) { return this.#data('PATCH', `/communities/${enc(id)}/roles/${enc(roleId)}`, { body: fields }); }
  deleteRole(id, roleId) { return this.#data('DELETE', `/communities/${enc(id)}/roles/${enc(roleId)}`); }
  setMemberRole(id, userId, roleId, granted) {
    return this.#data(granted ? 'PUT' : 'DELETE', `/communities/${enc(id)}/members/${enc(userId)}/roles/${enc(roleId)}`);
  }
  kick(id, userId, reason) { return this.#data('DELETE', `/communities/${enc(id)}/members/${enc(userId)}`, { reason }); }
  ban(id, userId, { deleteMessageSecs = 0, reason } = {}) {
    return this.#data('PUT', `/communities/${enc(id)}/bans/${enc(userId)}?deleteMessageSecs=${deleteMessageSecs}`, { reason });
  }
  timeout(id, userId, secs, reason) {
    return this.#data('PUT', `/communities/${enc(id)}/members/${enc(userId)}/timeout`, { body: { secs }, reason });
  }
  /** Server mute / deafen: {mute?, deafen?}. */
  voiceModerate(id, userId, fields) {
    return this.#data('PUT', `/communities/${enc(id)}/members/${enc(userId)}/voice`, { body: fields });
  }
  /** Takes a member out of the voice of `fromChannelId` and into `toChannelId`'s (their client
   *  joins it); without `toChannelId` it disconnects them. */
  voiceMove(id, userId, fromChannelId, toChannelId = null) {
    const body = { fromChannelId };
    if (toChannelId) body.toChannelId = toChannelId;
    return this.#data('POST', `/communities/${enc(id)}/members/${enc(userId)}/voice/move`, { body });
  }
  /** A page of bans: {data: [{userId, username, reason, bannedBy, createdAt}], hasMore}. */
  bans(id, { after, limit = 1000 } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (after) q.set('after', after);
    return this.request('GET', `/communities/${enc(id)}/bans?${q}`);
  }
  createInvite(id, fields) { return this.#data('POST', `/communities/${enc(id)}/invites`, { body: fields }); }
  invites(id) { return this.#data('GET', `/communities/${enc(id)}/invites`); }
  revokeInvite(id, code) { return this.#data('DELETE', `/communities/${enc(id)}/invites/${enc(code)}`); }
  /** {code, community, expiresAt}. */
  invite(code) { return this.#data('GET', `/invites/${enc(code)}`); }
  /** {communityId, joined} or, where joins need approval, {communityId, joined: false, requested: true}. */
  joinInvite(code) { return this.#data('POST', `/invites/${enc(code)}/join`, { body: {} }); }
  joinRequests(id, { after, limit = 100 } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (after) q.set('after', after);
    return this.request('GET', `/communities/${enc(id)}/join-requests?${q}`);
  }
  decideJoinRequest(id, userId, accept) {
    return this.#data(accept ? 'PUT' : 'DELETE', `/communities/${enc(id)}/join-requests/${enc(userId)}`);
  }
  /** Newest first: {data, hasMore, nextBefore}. */
  auditLog(id, { before, action, actor, limit = 50 } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before) q.set('before', before);
    if (action) q.set('action', action);
    if (actor) q.set('actor', actor);
    return this.request('GET', `/communities/${enc(id)}/audit-log?${q}`);
  }

  // ---- files ----
  /**
   * Uploads a file to a room (POST /files?roomId=…, multipart with a `file` part) and resolves
   * with what the server stored: {id, name, size, mimeType (sniffed from the bytes), url, …}.
   * XMLHttpRequest rather than fetch, for upload progress: `onProgress(sentBytes, totalBytes)`.
   * `signal` cancels it (ApiError code ABORTED). A too large file is refused with 413
   * PAYLOAD_TOO_LARGE and `details.limit` (bytes).
   */
  async uploadFile(roomId, file, { name = file.name, onProgress, signal, retried = false } = {}) {
    const token = await this.#token();
    const form = new FormData();
    form.append('file', file, name || 'file');
    const { status, json } = await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      const abort = () => xhr.abort();
      xhr.open('POST', `/api/v1/files?roomId=${enc(roomId)}`);
      xhr.setRequestHeader('authorization', `Bearer ${token}`);
      xhr.setRequestHeader('accept', 'application/json');
      xhr.responseType = 'json';
      xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onload = () => {
        signal?.removeEventListener('abort', abort);
        resolve({ status: xhr.status, json: xhr.response });
      };
      xhr.onerror = () => reject(new ApiError(0, 'NETWORK', 'Cannot reach the server. Check your connection.'));
      xhr.onabort = () => reject(new ApiError(0, 'ABORTED', 'The upload was cancelled.'));
      if (signal?.aborted) {
        reject(new ApiError(0, 'ABORTED', 'The upload was cancelled.'));
        return;
      }
      signal?.addEventListener('abort', abort, { once: true });
      xhr.send(form);
    });
    if (status === 401 && !retried) {
      await this.#refreshOr401();
      return this.uploadFile(roomId, file, { name, onProgress, signal, retried: true });
    }
    if (status < 200 || status >= 300 || json?.success !== true) throw errorOf(status, json);
    return json.data;
  }

  /** An uploaded file's details: {id, name, size, mimeType, url, roomId, uploadedBy, createdAt}. */
  fileMeta(id) { return this.#data('GET', `/files/${enc(id)}/meta`); }

  /** An uploaded file's bytes as a Blob (with the Authorization header: nothing in the URL). */
  async fileBlob(id, { retried = false } = {}) {
    const token = await this.#token();
    let res;
    try {
      res = await fetch(`/api/v1/files/${enc(id)}`, { headers: { authorization: `Bearer ${token}` } });
    } catch {
      throw new ApiError(0, 'NETWORK', 'Cannot reach the server. Check your connection.');
    }
    if (res.status === 401 && !retried) {
      await this.#refreshOr401();
      return this.fileBlob(id, { retried: true });
    }
    if (!res.ok) throw errorOf(res.status, await res.json().catch(() => null));
    return res.blob();
  }

  /**
   * A URL an <img> or <audio> element can load the file from: same origin (the page's CSP
   * allows no blob: media), with the access token as `?token=` since elements cannot send
   * headers. The server accepts it for downloads only; it expires with the token (15 min), so
   * an element that fails to load asks again.
   */
  async fileSrc(id) {
    return `/api/v1/files/${enc(id)}?token=${enc(await this.#token())}`;
  }
}

/** The ApiError for a failed response (the server's code, message and details). */
function errorOf(status, json) {
  const e = json?.error || {};
  let message = e.message || `Request failed (${status}).`;
  if (e.code === 'RATE_LIMITED' && e.details?.retryAfterMs) {
    message = `Too many requests. Try again in ${Math.ceil(e.details.retryAfterMs / 1000)} s.`;
  }
  return new ApiError(status, e.code || `HTTP_${status}`, message, e.details);
}

const enc = encodeURIComponent;

function toApiError(e) {
  if (e instanceof ApiError) return e;
  if (e instanceof AuthExpired) return new ApiError(401, 'UNAUTHORIZED', e.message);
  return new ApiError(0, 'NETWORK', e?.message || 'Cannot reach the server.');
}
