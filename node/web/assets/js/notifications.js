// Desktop notifications, sounds and the title badge.
//
// - Mentions: `mention:created` (to every session of each person a message reaches, by name,
//   role, @everyone or @here, following the room or not) adds one to the room's mention badge,
//   plays a short sound and shows a desktop notification, unless the room is open in a
//   visible, focused tab (then nothing), or the server says the user's settings make it no
//   notification (`notify: false`: the badge still counts).
// - Direct messages: a new message from the other person in a DM that is not being read plays
//   the sound and shows a notification, as the room's setting allows (`notifies` below is the
//   server's rule, `voiceflow_wire::v1::notify::notifies`).
// - Calls: `call:incoming` rings (a repeating tone) and shows a notification until the call
//   is answered, declined or ends.
// - Permission is asked only when the user clicks the bell (self footer), never at load.
// - The title reads "(3) …" with the mentions plus unread direct messages.
//
// Sounds are synthesised with the Web Audio API (no audio files).

const TITLE_RE = /^\(\d+\) /;

/** The server's decision, for the room's effective setting (`notifications` of
 *  GET /users/me/rooms): muted or `none` nothing, `mentions` mentions / DMs / calls. */
export function notifies(setting, kind, now = Date.now()) {
  if (!setting) return true;
  if (setting.muteUntil && setting.muteUntil > now) return false;
  if (setting.level === 'none') return false;
  if (setting.level === 'mentions') return kind !== 'message';
  return true;
}

export class Notifier {
  #listening = [];
  #audio = null;
  #ring = null;
  #shown = new Map(); // key → Notification
  #titleObserver = null;

  constructor({ socket, store, chat, router, communities = null }) {
    this.communities = communities;
    this.socket = socket;
    this.store = store;
    this.chat = chat;
    this.router = router;
    this.me = chat.me;
  }

  /** 'default' | 'granted' | 'denied' | 'unsupported'. */
  get permission() {
    return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
  }

  /** Asks for the permission (from a click); also unlocks audio. */
  async askPermission() {
    this.#context();
    if (this.permission !== 'default') return this.permission;
    const answer = await Notification.requestPermission();
    this.store.emit('notify-permission', { answer });
    return answer;
  }

  start() {
    const { socket, store } = this;
    const onEvent = (e) => this.#onEvent(e.detail.type, e.detail.data);
    const onFocus = () => this.#clearCurrent();
    socket.addEventListener('event', onEvent);
    document.addEventListener('visibilitychange', onFocus);
    window.addEventListener('focus', onFocus);
    // Audio may start only after a gesture: the first click or key unlocks it.
    const unlock = () => this.#context();
    window.addEventListener('pointerdown', unlock, { once: true });
    window.addEventListener('keydown', unlock, { once: true });
    this.#listening.push(
      () => socket.removeEventListener('event', onEvent),
      () => document.removeEventListener('visibilitychange', onFocus),
      () => window.removeEventListener('focus', onFocus),
      store.on('messages', (d) => this.#onMessages(d)),
      store.on('current', () => this.#clearCurrent()),
      store.on('unread', () => this.#title()),
      store.on('call', () => { if (!this.#ringing()) this.#stopRing(); }),
    );
    const titleEl = document.querySelector('title');
    if (titleEl) {
      this.#titleObserver = new MutationObserver(() => this.#title());
      this.#titleObserver.observe(titleEl, { childList: true });
    }
    this.#title();
  }

  stop() {
    this.#listening.forEach((f) => f());
    this.#listening = [];
    this.#titleObserver?.disconnect();
    this.#stopRing();
    for (const n of this.#shown.values()) n.close();
    this.#shown.clear();
    document.title = document.title.replace(TITLE_RE, '');
  }

  /** Whether the user is reading `roomId` right now (then nothing is announced). */
  #reading(roomId) {
    return this.store.currentRoomId === roomId && document.visibilityState === 'visible' && document.hasFocus();
  }

  #onEvent(type, data) {
    if (type === 'mention:created' && data?.roomId) this.#mentioned(data);
    else if (type === 'call:incoming' && data?.callId) this.#incomingCall(data);
    else if ((type === 'call:ended' || type === 'call:state') && !this.#ringing()) this.#stopRing();
  }

  #mentioned(data) {
    const room = this.store.room(data.roomId);
    if (this.#reading(data.roomId)) return;
    if (room) {
      // Once per message: the server tells a person once, but a reconnect may replay.
      if (room.mentionIds?.has(data.messageId)) return;
      room.mentions = (room.mentions || 0) + 1;
      room.mentionIds = room.mentionIds || new Set();
      room.mentionIds.add(data.messageId);
      this.store.emit('unread', { roomId: room.id });
    }
    if (data.notify === false) return;
    const where = room ? room.displayName(this.me) : 'a room';
    const whom = { role: 'your role', everyone: '@everyone', here: '@here' }[data.via] || 'you';
    this.#sound('mention');
    this.#show(`mention:${data.messageId}`, `${data.authorName} mentioned ${whom} in ${where}`,
      this.#readable(data.snippet), data.roomId);
  }

  /** Live messages: DMs notify. Mentions, by name, role, `@everyone` or `@here`, come as
   *  `mention:created` to each person the server found they reach. */
  #onMessages({ roomId, reason, messageId }) {
    if (reason !== 'live' || !messageId) return;
    const room = this.store.room(roomId);
    const m = room?.messages.get(messageId);
    if (!m || m.userId === this.me.id || m.type === 'system' || m.deleted) return;
    if (this.#reading(roomId)) return;
    const named = (m.mentions || []).includes(this.me.id);
    if (room.kind === 'dm' && !named && notifies(room.notifications, 'dm')) {
      this.#sound('dm');
      this.#show(`dm:${m.id}`, m.username, this.#readable(m.content) || 'sent an attachment', roomId);
    }
  }

  #incomingCall(data) {
    const room = this.store.room(data.roomId);
    if (!notifies(room?.notifications, 'call')) return;
    this.#startRing();
    this.#show(`call:${data.callId}`, `${data.callerName} is calling`, 'Incoming voice call', data.roomId,
      { requireInteraction: true });
  }

  #ringing() {
    const c = this.store.call;
    return Boolean(c && !c.outgoing && (c.state === 'ringing' || c.state === 'dialing'));
  }

  /** Mentions shown with names, as in the message list. */
  #readable(text) {
    return (text || '').replace(/<@(&?)(\d{1,19})>/g, (_, role, id) => {
      if (role) return '@role';
      for (const room of this.store.rooms.values()) {
        const m = room.members.get(id);
        if (m) return `@${m.username}`;
      }
      return '@someone';
    }).slice(0, 200);
  }

  #show(key, title, body, roomId, extra = {}) {
    if (this.permission !== 'granted') return;
    try {
      const n = new Notification(title, { body, tag: key, icon: '/assets/icon.svg', ...extra });
      n.onclick = () => {
        window.focus();
        if (roomId) this.router.go(`/rooms/${roomId}`);
        n.close();
      };
      n.onclose = () => this.#shown.delete(key);
      this.#shown.set(key, n);
    } catch {
      // Some browsers allow notifications only from a service worker: the badge still shows.
    }
  }

  /** The open room, now being read: its mentions are seen. */
  #clearCurrent() {
    const room = this.store.currentRoom;
    if (!room || !this.#reading(room.id)) return;
    if (room.mentions) {
      room.mentions = 0;
      room.mentionIds?.clear();
      this.store.emit('unread', { roomId: room.id });
    }
    for (const [key, n] of this.#shown) {
      if (key.startsWith('mention:') || key.startsWith('dm:')) n.close();
    }
  }

  /** "(n) " before the title: mentions plus unread direct messages. */
  #title() {
    let n = 0;
    for (const room of this.store.rooms.values()) {
      n += room.mentions || 0;
      if (room.kind === 'dm') n += room.unread || 0;
    }
    const base = document.title.replace(TITLE_RE, '');
    const want = n ? `(${n > 99 ? '99+' : n}) ${base}` : base;
    if (document.title !== want) document.title = want;
  }

  // ---- sound ----

  #context() {
    if (this.#audio || typeof AudioContext === 'undefined') return this.#audio;
    this.#audio = new AudioContext();
    return this.#audio;
  }

  /** Two short tones: higher for a mention, lower for a DM. */
  #sound(kind) {
    const ctx = this.#audio;
    if (!ctx || ctx.state !== 'running') return;
    const base = kind === 'mention' ? 880 : 660;
    this.#tone(ctx, base, 0, 0.12);
    this.#tone(ctx, base * 1.5, 0.13, 0.12);
  }

  #tone(ctx, freq, at, length) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, ctx.currentTime + at);
    gain.gain.exponentialRampToValueAtTime(0.2, ctx.currentTime + at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + at + length);
    osc.connect(gain).connect(ctx.destination);
    osc.start(ctx.currentTime + at);
    osc.stop(ctx.currentTime + at + length + 0.02);
  }

  #startRing() {
    this.#stopRing();
    const ring = () => {
      const ctx = this.#audio;
      if (!ctx || ctx.state !== 'running') return;
      for (let i = 0; i < 4; i += 1) this.#tone(ctx, i % 2 ? 480 : 440, i * 0.25, 0.22);
    };
    ring();
    this.#ring = setInterval(ring, 2500);
  }

  #stopRing() {
    clearInterval(this.#ring);
    this.#ring = null;
    for (const [key, n] of this.#shown) {
      if (key.startsWith('call:')) n.close();
    }
  }
}
