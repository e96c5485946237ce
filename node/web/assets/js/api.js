// The REST client for /api/v1 (see wire/PROTOCOL.md). Every call returns the whole success
// envelope's `data` (or the envelope, for paged lists) and throws ApiError with the server's
// code, message and details (details.field names the field of a validation error).

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
  async request(method, path, { body, auth = true, retried = false } = {}) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (auth) {
      try {
        headers.authorization = `Bearer ${await this.session.accessToken()}`;
      } catch (e) {
        throw toApiError(e);
      }
    }
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
      try {
        await this.session.refresh();
      } catch (e) {
        throw toApiError(e);
      }
      return this.request(method, path, { body, auth, retried: true });
    }
    if (!res.ok || !json || json.success !== true) {
      const e = json?.error || {};
      let message = e.message || `Request failed (${res.status}).`;
      if (e.code === 'RATE_LIMITED' && e.details?.retryAfterMs) {
        message = `Too many requests. Try again in ${Math.ceil(e.details.retryAfterMs / 1000)} s.`;
      }
      throw new ApiError(res.status, e.code || `HTTP_${res.status}`, message, e.details);
    }
    return json;
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

  // ---- messages ----
  /** Newest first: {data, hasMore}. */
  messages(roomId, { before, limit = 50 } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before) q.set('before', before);
    return this.request('GET', `/rooms/${enc(roomId)}/messages?${q}`);
  }
  deleteMessage(id) { return this.#data('DELETE', `/messages/${enc(id)}`); }
}

const enc = encodeURIComponent;

function toApiError(e) {
  if (e instanceof ApiError) return e;
  if (e instanceof AuthExpired) return new ApiError(401, 'UNAUTHORIZED', e.message);
  return new ApiError(0, 'NETWORK', e?.message || 'Cannot reach the server.');
}
