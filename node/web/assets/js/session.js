// The signed-in session: tokens and user kept in localStorage (a reload keeps you signed in),
// refreshed before the access token expires and whenever the server says 401.
//
// Refresh tokens rotate: each is exchanged once, and presenting a used one revokes the whole
// login. Tabs share localStorage, so a refresh runs under a cross-tab Web Lock and first
// re-reads storage: when another tab already rotated the token, this tab adopts the new pair
// instead of presenting the dead one.

const KEY = 'vf.session';
/** Refresh this long before the access token expires. */
const EARLY_MS = 60_000;

export class AuthExpired extends Error {
  constructor(message = 'Your session has expired. Please sign in again.') {
    super(message);
    this.code = 'UNAUTHORIZED';
  }
}

/**
 * Events: `change` (signed in, tokens rotated, or adopted from another tab) and
 * `signedout` (detail: {reason}, where reason is 'logout', 'expired' or 'elsewhere').
 */
export class Session extends EventTarget {
  #data = null;
  #timer = 0;
  #inflight = null;

  constructor() {
    super();
    this.#data = read();
    this.#schedule();
    window.addEventListener('storage', (e) => {
      if (e.key !== KEY) return;
      const next = read();
      if (!next && this.#data) {
        this.#data = null;
        clearTimeout(this.#timer);
        this.dispatchEvent(new CustomEvent('signedout', { detail: { reason: 'elsewhere' } }));
      } else if (next) {
        const wasSignedIn = Boolean(this.#data);
        this.#data = next;
        this.#schedule();
        if (wasSignedIn) this.dispatchEvent(new Event('change'));
      }
    });
  }

  get signedIn() { return Boolean(this.#data); }
  get user() { return this.#data?.user ?? null; }
  get refreshToken() { return this.#data?.refreshToken ?? null; }

  /** Stores a `{token, refreshToken, user, expiresIn}` reply from register/login/refresh. */
  set(reply) {
    this.#data = {
      token: reply.token,
      refreshToken: reply.refreshToken,
      user: reply.user,
      // Relative to this clock (expiresIn), so a skewed client clock does not matter.
      expiresAt: reply.expiresIn
        ? Date.now() + reply.expiresIn * 1000
        : tokenExpiry(reply.token) ?? Date.now() + 900_000,
    };
    localStorage.setItem(KEY, JSON.stringify(this.#data));
    this.#schedule();
    this.dispatchEvent(new Event('change'));
  }

  /** Updates the stored user (after PATCH /users/me). */
  setUser(user) {
    if (!this.#data) return;
    this.#data.user = user;
    localStorage.setItem(KEY, JSON.stringify(this.#data));
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async accessToken() {
    if (!this.#data) throw new AuthExpired('Not signed in.');
    if (this.#data.expiresAt - Date.now() < 30_000) await this.refresh();
    if (!this.#data) throw new AuthExpired();
    return this.#data.token;
  }

  /**
   * Exchanges the refresh token for a new pair (one exchange at a time per tab, and across tabs
   * under a Web Lock). Throws AuthExpired (and signs out) when the server refuses it; a network
   * failure throws a plain Error and keeps the session for a later try.
   */
  refresh() {
    if (!this.#inflight) {
      const used = this.#data?.refreshToken;
      const run = () => this.#exchange(used);
      const locked = navigator.locks?.request
        ? navigator.locks.request('voiceflow-refresh', run)
        : run();
      this.#inflight = locked.finally(() => { this.#inflight = null; });
    }
    return this.#inflight;
  }

  async #exchange(used) {
    const stored = read();
    if (!stored) {
      this.clear('expired');
      throw new AuthExpired();
    }
    if (stored.refreshToken !== used && stored.expiresAt - Date.now() > EARLY_MS) {
      // Another tab rotated the pair while we waited for the lock: adopt it.
      this.#data = stored;
      this.#schedule();
      return;
    }
    let res;
    try {
      res = await fetch('/api/v1/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refreshToken: stored.refreshToken }),
      });
    } catch {
      throw new Error('Cannot reach the server to renew the session.');
    }
    const body = await res.json().catch(() => null);
    if (res.ok && body?.success) {
      this.set(body.data);
      return;
    }
    if (res.status === 401 || res.status === 400) {
      this.clear('expired');
      throw new AuthExpired();
    }
    throw new Error(body?.error?.message || `Session renewal failed (${res.status}).`);
  }

  /** Forgets the session locally (the caller tells the server, if it can). */
  clear(reason = 'logout') {
    const had = Boolean(this.#data);
    this.#data = null;
    clearTimeout(this.#timer);
    localStorage.removeItem(KEY);
    if (had) this.dispatchEvent(new CustomEvent('signedout', { detail: { reason } }));
  }

  #schedule() {
    clearTimeout(this.#timer);
    if (!this.#data) return;
    const wait = Math.max(5_000, this.#data.expiresAt - Date.now() - EARLY_MS);
    // Timers in background tabs may fire late; accessToken() checks expiry again anyway.
    this.#timer = setTimeout(() => {
      this.refresh().catch(() => { /* retried on next use or next timer */ this.#retryLater(); });
    }, Math.min(wait, 2 ** 31 - 1));
  }

  #retryLater() {
    clearTimeout(this.#timer);
    if (this.#data) this.#timer = setTimeout(() => this.#schedule(), 15_000);
  }
}

function read() {
  try {
    const data = JSON.parse(localStorage.getItem(KEY) || 'null');
    return data && data.token && data.refreshToken && data.user ? data : null;
  } catch {
    return null;
  }
}

/** The `exp` claim of a JWT, in ms; null when it cannot be read. */
function tokenExpiry(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
    return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}
