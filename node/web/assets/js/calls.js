// 1:1 calls in a DM (kind "dm"): ringing and answering over the WebSocket, media over the same
// SFU flow as voice channels (the channel is the DM room).
//
//   caller: call:start {roomId}            → call:state dialing → ringing
//   callee: call:incoming {…callerName}    → call:accept | call:decline
//   both:   call:state connecting          → the two sessions that started and accepted it
//                                            do voice:join {channelId: roomId, …}
//           call:state connected           (the server saw both join)
//           call:hangup | call:cancel      → call:ended {reason, durationMs}
//
// Events reach every session of both users. Only the session that started the call, or the
// one that accepted it, connects media: the callee at once, the caller once the callee is in
// (voice:user_joined in the DM) or after a short wait — two joins at the same instant can
// trip the server's renegotiation; the user's other tabs stop ringing and show that the
// call goes on elsewhere. store.call holds the call; 'call' is emitted on every change, with
// `ended` in the detail when it ends.

import { formatDuration } from './dom.js';

const LIVE = ['dialing', 'ringing', 'connecting', 'connected'];
/** The caller joins the media at the latest this long after `connecting`. */
const CALLER_WAIT_MS = 3_000;

export class Calls {
  #starting = null;
  #accepting = null;
  #listening = [];
  /** The caller waiting for the callee's media: {roomId, timer}. */
  #waiting = null;

  /** `notify(text)`: a short notice (toast). */
  constructor({ api, socket, store, chat, voice, notify = () => {} }) {
    this.api = api;
    this.socket = socket;
    this.store = store;
    this.chat = chat;
    this.voice = voice;
    this.me = chat.me;
    this.notify = notify;
    /** The last call that ended: {callId, roomId, reason, durationMs, text}. */
    this.lastEnded = null;
  }

  start() {
    const onEvent = (e) => this.#onEvent(e.detail.type, e.detail.data);
    this.socket.addEventListener('event', onEvent);
    this.#listening.push(
      () => this.socket.removeEventListener('event', onEvent),
      this.store.on('voice', (d) => {
        const w = this.#waiting;
        const c = this.store.call;
        if (!w || !c || d.roomId !== w.roomId) return;
        if (this.store.room(w.roomId)?.voiceMembers.has(c.calleeId)) this.#joinMedia(w.roomId);
      }),
    );
  }

  stop() {
    this.#stopWaiting();
    this.#listening.forEach((f) => f());
    this.#listening = [];
  }

  get active() { return this.store.call; }

  /** Rings the other person of a DM. */
  async call(roomId) {
    if (this.store.call) throw new Error('You are already in a call.');
    const room = this.store.room(roomId);
    this.#starting = roomId;
    try {
      const ack = await this.socket.request('call:start', { roomId });
      this.#merge(ack, { outgoing: true, mine: true, peerName: room?.displayName(this.me) || 'them' });
    } finally {
      this.#starting = null;
    }
  }

  /** Answers the ringing call (this tab connects the media). */
  async accept() {
    const c = this.store.call;
    if (!c) return;
    this.#accepting = c.callId;
    c.mine = true;
    try {
      const ack = await this.socket.request('call:accept', { roomId: c.roomId });
      this.#merge(ack, { mine: true });
    } catch (e) {
      this.#accepting = null;
      throw e;
    }
  }

  async decline() {
    const c = this.store.call;
    if (!c) return;
    await this.socket.request('call:decline', { roomId: c.roomId });
  }

  /** Calls off an outgoing call before it is answered. */
  async cancel() {
    const c = this.store.call;
    if (!c) return;
    await this.socket.request('call:cancel', { roomId: c.roomId });
  }

  /** Ends the call (either side, any time) and closes the connection. */
  async hangup() {
    const c = this.store.call;
    if (!c) return;
    if (this.voice.inChannel(c.roomId)) this.voice.leave().catch(() => {});
    try {
      await this.socket.request('call:hangup', { roomId: c.roomId });
    } catch (e) {
      // Offline: the server ends it when the session goes; forget it here.
      if (e.code === 'OFFLINE' || e.code === 'DISCONNECTED') this.#end({ ...c, reason: 'disconnected' });
      else throw e;
    }
  }

  /** Milliseconds since the call connected (0 before). */
  elapsed() {
    const c = this.store.call;
    if (!c?.connectedLocal) return 0;
    return Date.now() - c.connectedLocal;
  }

  #onEvent(type, data) {
    if (!data) return;
    switch (type) {
      case 'call:incoming': {
        const c = this.store.call;
        if (c && c.callId !== data.callId) return; // busy here: the server answers for us
        this.#ensureRoom(data.roomId);
        this.#merge({ ...data, state: c?.state || 'ringing', calleeId: this.me.id },
          { outgoing: false, peerName: data.callerName });
        break;
      }
      case 'call:state':
        this.#state(data);
        break;
      case 'call:ended':
        this.#end(data);
        break;
      default:
        break;
    }
  }

  #state(data) {
    const c = this.store.call;
    if (c && c.callId && data.callId && c.callId !== data.callId) return;
    if (!LIVE.includes(data.state)) {
      if (c && this.voice.inChannel(c.roomId)) this.voice.leave().catch(() => {});
      if (c) this.#merge(data, {});
      return;
    }
    const outgoing = data.callerId === this.me.id;
    const mine = Boolean(c?.mine) || this.#starting === data.roomId || this.#accepting === data.callId;
    if (!c) this.#ensureRoom(data.roomId);
    this.#merge(data, {
      outgoing,
      mine,
      peerName: c?.peerName || this.store.room(data.roomId)?.displayName(this.me) || 'them',
    });
    if ((data.state === 'connecting' || data.state === 'connected') && mine
      && !this.voice.inChannel(data.roomId) && this.#waiting?.roomId !== data.roomId) {
      const calleeIn = this.store.room(data.roomId)?.voiceMembers.has(data.calleeId);
      if (!outgoing || calleeIn || data.state === 'connected') this.#joinMedia(data.roomId);
      else {
        this.#waiting = { roomId: data.roomId, timer: setTimeout(() => this.#joinMedia(data.roomId), CALLER_WAIT_MS) };
      }
    }
  }

  #joinMedia(roomId) {
    this.#stopWaiting();
    const c = this.store.call;
    if (!c || c.roomId !== roomId || !LIVE.includes(c.state) || this.voice.inChannel(roomId)) return;
    this.voice.join(roomId, { call: true }).catch((e) => {
      this.notify(`Could not connect the call: ${e.message}`);
      this.hangup().catch(() => {});
    });
  }

  #stopWaiting() {
    clearTimeout(this.#waiting?.timer);
    this.#waiting = null;
  }

  #end(data) {
    const c = this.store.call;
    if (c && data.callId && c.callId && c.callId !== data.callId) return;
    const roomId = data.roomId || c?.roomId;
    this.#stopWaiting();
    if (roomId && this.voice.inChannel(roomId)) this.voice.leave().catch(() => {});
    this.#accepting = null;
    const involved = Boolean(c);
    const peer = c?.peerName || this.store.room(roomId)?.displayName(this.me) || 'They';
    const text = endText(data.reason, data.durationMs, peer, c?.outgoing ?? data.callerId === this.me.id);
    this.lastEnded = { callId: data.callId, roomId, reason: data.reason, durationMs: data.durationMs, text };
    this.store.call = null;
    this.store.emit('call', { ended: this.lastEnded });
    if (involved) this.notify(text);
  }

  #merge(data, extra) {
    const prev = this.store.call;
    const next = { ...prev, ...data, ...extra };
    if (prev?.mine) next.mine = true;
    if (next.state === 'connected' && !next.connectedLocal) {
      // Time it from the server's connectedAt when it is sane, else from now.
      const at = typeof data.connectedAt === 'number' ? data.connectedAt : Date.parse(data.connectedAt || '');
      next.connectedLocal = Number.isFinite(at) && Math.abs(Date.now() - at) < 60_000 ? at : Date.now();
    }
    this.store.call = next;
    this.store.emit('call', {});
  }

  /** A DM someone else opened: add it to the sidebar. */
  #ensureRoom(roomId) {
    if (!roomId || this.store.room(roomId)) return;
    this.api.room(roomId).then((meta) => this.chat.adopt(meta)).catch(() => {});
  }
}

/** What the end-of-call notice says. */
export function endText(reason, durationMs, peer, outgoing) {
  const dur = durationMs ? ` (${formatDuration(durationMs)})` : '';
  switch (reason) {
    case 'missed': return outgoing ? `${peer} did not answer.` : `Missed call from ${peer}.`;
    case 'declined': return outgoing ? `${peer} declined the call.` : 'Call declined.';
    case 'cancelled': return outgoing ? 'Call cancelled.' : `${peer} cancelled the call.`;
    case 'busy': return `${peer} is busy.`;
    case 'hung_up': return `Call ended${dur}.`;
    case 'disconnected': return `Call disconnected${dur}.`;
    case 'failed': return 'The call could not be connected.';
    default: return `Call ended${dur}.`;
  }
}
