// The WebSocket connection (GET /ws?token=…): one per tab, reconnecting by itself.
//
// - Backoff: 0.5 s doubling to 15 s, with full jitter (a random wait between half and all of
//   the step) so a thousand tabs do not come back in the same millisecond after a restart.
//   A close with 1001 (node shutting down) retries almost at once.
// - Requests carry an `id`; the promise settles with the ack (`ok` → data, else an error with
//   the server's code). A request made while offline fails at once with code OFFLINE; one in
//   flight when the connection drops fails with DISCONNECTED. The chat layer decides what to
//   retry (sends are retried with the same nonce, so a retry never duplicates).
// - A heartbeat `ping` every 25 s notices a dead connection the OS has not reported yet.
// - A refused upgrade (expired or revoked token) looks like any failed connection in a browser,
//   so after two failures before `hello` the owner is asked to check the session.
//
// - The connection lives as long as its access token: when the session rotates its tokens,
//   `refreshAuth()` hands the new one over (`auth:refresh`); a connection that was not
//   extended is closed with 4001 and simply reconnects with a fresh token. A close with 4003
//   means the sign-in was revoked (logout elsewhere, refresh-token reuse): no reconnect.
//
// Events: `state` (detail: {state, retryAt}) with state connecting | online | offline;
// `open` (detail: the hello data) after each successful (re)connect; `event` (detail:
// {type, data}) for every server event that is not an ack; `revoked` (detail: {reason}) on a
// 4003 close.

const MAX_DELAY_MS = 15_000;
const BASE_DELAY_MS = 500;
const HEARTBEAT_MS = 25_000;
const REQUEST_TIMEOUT_MS = 15_000;

export class SocketError extends Error {
  constructor(code, message, details) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

export class Socket extends EventTarget {
  #ws = null;
  #state = 'offline';
  #stopped = true;
  #attempt = 0;
  #failuresBeforeHello = 0;
  #retryTimer = 0;
  #retryAt = 0;
  #heartbeat = 0;
  #nextId = 1;
  #pending = new Map();

  /**
   * @param {() => Promise<string>} getToken a valid access token (refreshing if needed)
   * @param {() => Promise<void>} checkAuth called after repeated failures before `hello`;
   *   signs the user out when the session is dead
   */
  constructor({ getToken, checkAuth }) {
    super();
    this.getToken = getToken;
    this.checkAuth = checkAuth;
    this.onOnline = () => { if (this.#state === 'offline') this.retryNow(); };
    this.onVisible = () => {
      if (document.visibilityState === 'visible' && this.#state === 'offline') this.retryNow();
    };
  }

  get state() { return this.#state; }
  get retryAt() { return this.#retryAt; }
  get online() { return this.#state === 'online'; }

  start() {
    if (!this.#stopped) return;
    this.#stopped = false;
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.#connect();
  }

  stop() {
    this.#stopped = true;
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    clearTimeout(this.#retryTimer);
    this.#teardown('stopped');
    this.#setState('offline');
  }

  /** Skips the rest of the backoff wait. */
  retryNow() {
    if (this.#stopped || this.#state === 'online' || this.#ws) return;
    clearTimeout(this.#retryTimer);
    this.#connect();
  }

  /** Extends the open connection with the session's current access token (after a refresh). */
  async refreshAuth() {
    if (this.#state !== 'online') return;
    try {
      const token = await this.getToken();
      await this.request('auth:refresh', { token });
    } catch {
      // Offline or refused: the server closes with 4001 at expiry and we reconnect then.
    }
  }

  /** Sends an event with an id and resolves with the ack's data. */
  request(type, data = {}, { timeout = REQUEST_TIMEOUT_MS } = {}) {
    if (this.#state !== 'online' || !this.#ws) {
      return Promise.reject(new SocketError('OFFLINE', 'Not connected.'));
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new SocketError('TIMEOUT', 'The server did not answer in time.'));
      }, timeout);
      this.#pending.set(id, { resolve, reject, timer });
      try {
        this.#ws.send(JSON.stringify({ type, id, data }));
      } catch {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new SocketError('DISCONNECTED', 'The connection was lost.'));
      }
    });
  }

  async #connect() {
    this.#setState('connecting');
    let token;
    try {
      token = await this.getToken();
    } catch (e) {
      if (e?.code === 'UNAUTHORIZED') return; // signed out; the app tears us down
      this.#scheduleRetry();
      return;
    }
    if (this.#stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`);
    } catch {
      this.#scheduleRetry();
      return;
    }
    this.#ws = ws;
    let greeted = false;
    ws.onmessage = (msg) => {
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (frame.type === 'hello') {
        greeted = true;
        this.#attempt = 0;
        this.#failuresBeforeHello = 0;
        this.#setState('online');
        this.#startHeartbeat();
        this.dispatchEvent(new CustomEvent('open', { detail: frame.data }));
      } else if (frame.type === 'ack') {
        const p = this.#pending.get(frame.id);
        if (!p) return;
        this.#pending.delete(frame.id);
        clearTimeout(p.timer);
        if (frame.ok) p.resolve(frame.data);
        else {
          const e = frame.error || {};
          p.reject(new SocketError(e.code || 'ERROR', e.message || 'Request failed.', e.details));
        }
      } else {
        this.dispatchEvent(new CustomEvent('event', { detail: { type: frame.type, data: frame.data } }));
      }
    };
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      this.#teardown('closed');
      if (this.#stopped) return;
      if (ev.code === 4003) {
        // The sign-in was revoked: reconnecting with its tokens cannot work.
        this.stop();
        this.dispatchEvent(new CustomEvent('revoked', { detail: { reason: ev.reason } }));
        return;
      }
      if (!greeted) this.#failuresBeforeHello++;
      if (ev.code === 1001 || ev.code === 4001) this.#attempt = 0; // draining / token expired: come straight back
      this.#scheduleRetry();
    };
    ws.onerror = () => { /* onclose follows and handles it */ };
  }

  #startHeartbeat() {
    clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => {
      const ws = this.#ws;
      this.request('ping', {}, { timeout: 10_000 }).catch((e) => {
        if (e.code === 'TIMEOUT' && this.#ws === ws) {
          // Dead but not yet reported: drop it ourselves and reconnect.
          this.#teardown('heartbeat');
          this.#scheduleRetry();
        }
      });
    }, HEARTBEAT_MS);
  }

  #teardown(why) {
    clearInterval(this.#heartbeat);
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000, why); } catch { /* already closed */ }
    }
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new SocketError('DISCONNECTED', 'The connection was lost.'));
    }
    this.#pending.clear();
  }

  async #scheduleRetry() {
    clearTimeout(this.#retryTimer);
    const step = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** this.#attempt);
    const delay = step / 2 + Math.random() * (step / 2);
    this.#attempt = Math.min(this.#attempt + 1, 10);
    this.#retryAt = Date.now() + delay;
    this.#setState('offline');
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
    if (this.#failuresBeforeHello >= 2 && this.#failuresBeforeHello % 2 === 0) {
      // Maybe the upgrade was refused with 401: let the session find out (it signs out if so).
      try { await this.checkAuth(); } catch { /* offline: keep trying */ }
    }
  }

  #setState(state) {
    if (state !== 'offline') this.#retryAt = 0;
    if (this.#state === state && state !== 'offline') return;
    this.#state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, retryAt: this.#retryAt } }));
  }
}
