// The voice connection: one RTCPeerConnection with the node's SFU, for a voice channel, a
// stage, or a 1:1 call (whose channel is the DM room). See wire/PROTOCOL.md, "Voice channels".
//
//   getUserMedia({audio}) → voice:ice_servers {channelId} → new RTCPeerConnection({iceServers})
//   → addTrack → createOffer → voice:join {channelId, sdp}
//   ack {sdp: answer, participants, iceServers} → setRemoteDescription(answer)
//   ICE candidates trickle both ways as voice:signal {channelId, candidate}
//   server re-offers (voice:signal {sdp}) → setRemoteDescription(offer) → createAnswer →
//   voice:signal {channelId, sdp: answer}
//
// Every signalling step runs on one promise chain, so an offer or a candidate that arrives
// while the join is still in flight waits for it. Local candidates found before the join ack
// are held until the server knows this connection. Each incoming stream (one per other
// speaker, id `voice-<sessionId>`) plays in its own <audio autoplay> element; deafening mutes
// them all (and tells the server, which then sends nothing).
//
// Who is in which channel is kept per room (room.voiceMembers) from voice:user_joined /
// voice:user_left / voice:state / stage:updated, for every room this client is subscribed to;
// the sidebar shows it. The connection itself is store.voice.
//
// Self-healing: if a server offer cannot be applied, or the connection has been up for a while
// with fewer incoming streams than there are other people who may speak, the client leaves
// and joins again (at most twice per join) — a fresh negotiation with everyone already in.
// (Two people joining at the same instant can leave the server's renegotiation stuck.)
//
// Camera and screen share ride on the same connection: see video.js (this.video).
//
// Tests reach the connection as window.__voiceflow.voicePc.

import { Video } from './video.js';

const JOIN_TIMEOUT_MS = 20_000;
/** How long after connecting every other speaker's stream must have arrived. */
const HEAL_AFTER_MS = 6_000;
const MAX_HEALS = 2;

export class Voice {
  #chain = Promise.resolve();
  #pc = null;
  #stream = null;
  #gen = 0;
  #joined = false;
  #localCandidates = [];
  #audios = new Map();
  #audioBox = null;
  /** The channel to be in (rejoined after a reconnect or a `rejoin`), or null. */
  #want = null;
  #healTimer = 0;
  #heals = 0;
  /** A join in progress {channelId, promise}: a second join of the same channel waits for it. */
  #joining = null;
  #listening = [];
  #micSender = null;

  /** `notify(text)`: shows a short notice (a toast). */
  constructor({ socket, store, chat, notify = () => {} }) {
    this.socket = socket;
    this.store = store;
    this.chat = chat;
    this.me = chat.me;
    this.notify = notify;
    window.__voiceflow = window.__voiceflow || {};
    window.__voiceflow.voice = this;
    /** The last signalling steps (for debugging: window.__voiceflow.voice.log). */
    this.log = [];
    this.video = new Video({ socket, store, notify, voice: this });
  }

  #note(text) {
    this.log.push(`${(performance.now() / 1000).toFixed(2)} ${text}`);
    if (this.log.length > 50) this.log.shift();
  }

  start() {
    const { socket } = this;
    const onEvent = (e) => this.#onEvent(e.detail.type, e.detail.data);
    const onState = (e) => {
      // The session ended with the connection: the server drops us from the channel.
      if (e.detail.state !== 'online' && this.store.voice) this.#teardown({ keepWant: true, state: 'reconnecting' });
    };
    const onOpen = () => {
      if (this.#want && !this.#pc) this.join(this.#want.channelId, this.#want.opts).catch(() => {});
    };
    socket.addEventListener('event', onEvent);
    socket.addEventListener('state', onState);
    socket.addEventListener('open', onOpen);
    this.#listening.push(
      () => socket.removeEventListener('event', onEvent),
      () => socket.removeEventListener('state', onState),
      () => socket.removeEventListener('open', onOpen),
    );
  }

  stop() {
    this.#want = null;
    if (this.store.voice) this.socket.request('voice:leave', { channelId: this.store.voice.channelId }).catch(() => {});
    this.#teardown({});
    this.#listening.forEach((f) => f());
    this.#listening = [];
    this.#audioBox?.remove();
  }

  get pc() { return this.#pc; }
  get channelId() { return this.store.voice?.channelId ?? null; }
  inChannel(channelId) { return this.store.voice?.channelId === channelId; }

  /**
   * Joins a voice channel, a stage, or (opts.call) the media of a 1:1 call. Leaves the current
   * channel first. Rejects with the server's error (ROOM_FULL, FORBIDDEN…).
   */
  join(channelId, opts = {}) {
    if (this.#joining?.channelId === channelId) return this.#joining.promise;
    const promise = this.#join(channelId, opts);
    this.#joining = { channelId, promise };
    const done = () => { if (this.#joining?.promise === promise) this.#joining = null; };
    promise.then(done, done);
    return promise;
  }

  async #join(channelId, opts) {
    if (this.inChannel(channelId) && this.#pc) return;
    if (this.store.voice) await this.leave();
    if (!opts.heal) this.#heals = 0;
    const gen = ++this.#gen;
    this.#want = { channelId, opts };
    this.#joined = false;
    this.#localCandidates = [];
    this.store.voice = {
      channelId, call: Boolean(opts.call), state: 'connecting', muted: false, deafened: false,
      participants: new Map(), queue: [], noMic: false,
    };
    this.#emit(channelId);

    let stream = null;
    try {
      const mic = this.video.micId;
      stream = await navigator.mediaDevices.getUserMedia({ audio: mic ? { deviceId: { ideal: mic } } : true });
    } catch {
      this.store.voice.noMic = true;
      this.notify('No microphone available: you can listen, but not speak.');
    }
    if (gen !== this.#gen) { stream?.getTracks().forEach((t) => t.stop()); return; }
    this.#stream = stream;

    // STUN/TURN servers (the node's TURN server with a fresh credential) before the offer:
    // candidates are gathered with it, and a server added later would need an ICE restart.
    let iceServers = [];
    try {
      const ice = await this.socket.request('voice:ice_servers', { channelId }, { timeout: 5_000 });
      iceServers = ice.iceServers || [];
    } catch { /* none: direct UDP only */ }
    if (gen !== this.#gen) { stream?.getTracks().forEach((t) => t.stop()); return; }

    // Tests force relay-only connections (a client behind a strict firewall) with
    // window.__voiceflow.iceTransportPolicy = 'relay'.
    const pc = new RTCPeerConnection({
      iceServers,
      iceTransportPolicy: window.__voiceflow.iceTransportPolicy || 'all',
    });
    this.#pc = pc;
    window.__voiceflow.voicePc = pc;
    const [micTrack] = stream?.getAudioTracks() ?? [];
    this.#micSender = micTrack ? pc.addTrack(micTrack, stream)
      : pc.addTransceiver('audio', { direction: 'sendrecv' }).sender;
    // Camera, screen and screen sound: sections with no track until turned on.
    this.video.prepare(pc);
    pc.onicecandidate = (e) => {
      if (!e.candidate || gen !== this.#gen) return;
      const c = { candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid, sdpMLineIndex: e.candidate.sdpMLineIndex };
      if (this.#joined) this.#sendCandidate(channelId, c);
      else this.#localCandidates.push(c);
    };
    pc.ontrack = (e) => {
      if (e.track.kind === 'video') this.video.refresh();
      else this.#play(e.streams[0] || new MediaStream([e.track]), e.track);
    };
    pc.onconnectionstatechange = () => {
      if (gen !== this.#gen || !this.store.voice) return;
      const s = pc.connectionState;
      if (s === 'connected') {
        this.#setState('connected');
        this.#scheduleCheck();
      } else if (s === 'failed') {
        this.notify('The voice connection failed. Reconnecting…');
        this.#rejoinSoon(channelId);
      }
    };

    const joining = (async () => {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      this.#note(`join ${channelId}`);
      const ack = await this.socket.request('voice:join', { channelId, sdp: pc.localDescription.sdp },
        { timeout: JOIN_TIMEOUT_MS });
      this.#note(`joined (${ack.participants?.length} in)`);
      if (gen !== this.#gen) return;
      if (!iceServers.length && ack.iceServers?.length) {
        try { pc.setConfiguration({ ...pc.getConfiguration(), iceServers: ack.iceServers }); } catch { /* keep */ }
      }
      await pc.setRemoteDescription({ type: 'answer', sdp: ack.sdp });
      this.video.refresh();
      this.#joined = true;
      for (const c of this.#localCandidates.splice(0)) this.#sendCandidate(channelId, c);
      this.#setParticipants(channelId, ack.participants || []);
    })();
    this.#chain = joining.catch(() => {});
    try {
      await joining;
    } catch (e) {
      if (gen === this.#gen) {
        this.#want = null;
        this.#teardown({});
      }
      throw e;
    }
  }

  /** Leaves the channel (voice:leave) and closes the connection. */
  async leave() {
    const v = this.store.voice;
    this.#want = null;
    if (!v) return;
    this.#teardown({});
    await this.socket.request('voice:leave', { channelId: v.channelId }).catch(() => {});
  }

  async setMuted(muted) {
    const v = this.store.voice;
    if (!v) return;
    v.muted = muted;
    this.#stream?.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    this.#emit(v.channelId);
    await this.#state({ muted });
  }

  async setDeafened(deafened) {
    const v = this.store.voice;
    if (!v) return;
    v.deafened = deafened;
    for (const audio of this.#audios.values()) audio.muted = deafened;
    this.#emit(v.channelId);
    await this.#state({ deafened });
  }

  /** Sends another microphone's sound (device selection). */
  async replaceMic(deviceId) {
    if (!this.#micSender || !this.store.voice) return;
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { deviceId: { exact: deviceId } } });
    const [track] = stream.getAudioTracks();
    if (track) track.enabled = !this.store.voice.muted;
    await this.#micSender.replaceTrack(track || null);
    this.#stream?.getTracks().forEach((t) => t.stop());
    this.#stream = stream;
    this.store.voice.noMic = !track;
  }

  /** A participant view from an ack (voice:state). */
  upsert(view) { this.#upsert(view); }

  toggleMute() { return this.setMuted(!this.store.voice?.muted); }
  toggleDeafen() { return this.setDeafened(!this.store.voice?.deafened); }

  // ---- stages ----
  raiseHand() { return this.#stage('stage:hand_raise'); }
  lowerHand() { return this.#stage('stage:hand_lower'); }
  promote(userId) { return this.#stage('stage:promote', userId); }
  demote(userId) { return this.#stage('stage:demote', userId); }
  kick(userId) { return this.#stage('stage:kick', userId); }
  ban(userId) { return this.#stage('stage:ban', userId); }
  endStage() { return this.#stage('stage:end'); }

  /** This user's entry in the current channel, if any. */
  self() { return this.store.voice?.participants.get(this.me.id) ?? null; }

  // ---- internals ----

  async #stage(type, userId) {
    const v = this.store.voice;
    if (!v) throw new Error('Join the stage first.');
    const data = { channelId: v.channelId };
    if (userId) data.userId = userId;
    const ack = await this.socket.request(type, data);
    this.#stageUpdated(ack);
    return ack;
  }

  async #state(change) {
    const v = this.store.voice;
    try {
      const view = await this.socket.request('voice:state', { channelId: v.channelId, ...change });
      this.#upsert(view);
    } catch (e) {
      if (e.code !== 'OFFLINE' && e.code !== 'DISCONNECTED') this.notify(`Could not change that: ${e.message}`);
    }
  }

  #sendCandidate(channelId, candidate) {
    this.socket.request('voice:signal', { channelId, candidate }).catch(() => {});
  }

  /** Runs a signalling step after every earlier one. */
  #then(step) {
    const gen = this.#gen;
    this.#chain = this.#chain.then(() => (gen === this.#gen && this.#pc ? step(this.#pc) : undefined))
      .catch((e) => {
        this.#note(`error: ${e?.message || e}`);
        console.warn('voice signalling:', e?.message || e);
      });
    return this.#chain;
  }

  #onEvent(type, data) {
    if (!data) return;
    const v = this.store.voice;
    const current = v && data.channelId === v.channelId;
    switch (type) {
      case 'voice:signal':
        if (!current) return;
        if (data.sdp) {
          this.#note('offer received');
          this.#then(async (pc) => {
            this.#note(`applying offer (${pc.signalingState})`);
            try {
              await pc.setRemoteDescription({ type: 'offer', sdp: data.sdp });
            } catch (e) {
              this.#note(`bad offer: ${e.message}`);
              this.#heal(data.channelId, 'bad offer');
              return;
            }
            const answer = await pc.createAnswer();
            await pc.setLocalDescription(answer);
            await this.socket.request('voice:signal', { channelId: data.channelId, sdp: pc.localDescription.sdp });
            this.#note('answer sent');
            this.video.refresh();
          });
        } else if (data.candidate) {
          this.#then((pc) => pc.addIceCandidate(data.candidate));
        }
        break;
      case 'voice:user_joined':
      case 'voice:state':
        this.#upsert(data);
        break;
      case 'voice:user_left':
        this.#left(data);
        break;
      case 'stage:updated':
        this.#stageUpdated(data);
        break;
      default:
        break;
    }
  }

  #left({ channelId, userId, reason }) {
    const room = this.store.room(channelId);
    room?.voiceMembers.delete(userId);
    const v = this.store.voice;
    const mine = userId === this.me.id && v?.channelId === channelId;
    if (mine && reason === 'left') {
      // Another tab of ours left; we are still there.
      this.#emit(channelId);
      return;
    }
    if (v?.channelId === channelId) v.participants.delete(userId);
    if (mine) {
      if (reason === 'rejoin') {
        this.#rejoinSoon(channelId);
        return;
      }
      const why = {
        disconnected: 'You were disconnected from voice.',
        removed: 'A host removed you from the stage.',
        banned: 'You were banned from this room.',
        ended: 'The stage has ended.',
      }[reason];
      this.#want = null;
      this.#teardown({});
      if (why && !v.call) this.notify(why);
      return;
    }
    this.#emit(channelId);
  }

  /** Connected for a while: is a stream missing? Then negotiate afresh. */
  #checkStreams(gen) {
    const v = this.store.voice;
    if (gen !== this.#gen || !v || !this.#pc) return;
    const speakers = [...v.participants.values()]
      .filter((p) => p.userId !== this.me.id && (!p.role || p.role !== 'listener')).length;
    if (this.#audios.size < speakers) this.#heal(v.channelId, `${this.#audios.size} of ${speakers} streams`);
  }

  #heal(channelId, why) {
    if (this.#heals >= MAX_HEALS) return;
    this.#heals += 1;
    this.#note(`healing (${why})`);
    const opts = { ...(this.#want?.opts || {}), heal: true };
    this.#teardown({ keepWant: true });
    // Until the new join starts, other joins of this channel (a call going back to
    // `connecting`) wait for this one.
    const promise = (async () => {
      await this.socket.request('voice:leave', { channelId }).catch(() => {});
      this.#joining = null;
      await this.join(channelId, opts);
    })();
    this.#joining = { channelId, promise };
    promise.catch((e) => this.notify(`Could not reconnect voice: ${e.message}`));
  }

  /** Checks the incoming streams a while after the participants changed. */
  #scheduleCheck() {
    const v = this.store.voice;
    if (!v || v.state !== 'connected' || this.#heals >= MAX_HEALS) return;
    const gen = this.#gen;
    clearTimeout(this.#healTimer);
    this.#healTimer = setTimeout(() => this.#checkStreams(gen), HEAL_AFTER_MS);
  }

  #rejoinSoon(channelId) {
    const opts = this.#want?.opts || {};
    this.#teardown({ keepWant: true, state: 'reconnecting' });
    this.#want = { channelId, opts };
    setTimeout(() => {
      if (this.#want?.channelId === channelId && !this.#pc && this.socket.online) {
        this.join(channelId, opts).catch((e) => this.notify(`Could not rejoin voice: ${e.message}`));
      }
    }, 300 + Math.random() * 400);
  }

  #upsert(member) {
    if (!member?.userId || !member.channelId) return;
    const room = this.store.room(member.channelId);
    const prev = room?.voiceMembers.get(member.userId);
    room?.voiceMembers.set(member.userId, { ...prev, ...member });
    const v = this.store.voice;
    if (v?.channelId === member.channelId) {
      const known = v.participants.has(member.userId);
      v.participants.set(member.userId, { ...v.participants.get(member.userId), ...member });
      if (!known) this.#scheduleCheck();
    }
    this.#emit(member.channelId);
  }

  #setParticipants(channelId, list) {
    const map = new Map(list.map((m) => [m.userId, m]));
    const room = this.store.room(channelId);
    if (room) room.voiceMembers = new Map(map);
    const v = this.store.voice;
    if (v?.channelId === channelId) {
      v.participants = map;
      this.#scheduleCheck();
    }
    this.#emit(channelId);
  }

  #stageUpdated(data) {
    if (!data?.channelId) return;
    this.#setParticipants(data.channelId, data.participants || []);
    const v = this.store.voice;
    if (v?.channelId === data.channelId) v.queue = data.queue || [];
    const room = this.store.room(data.channelId);
    if (room) room.stageQueue = data.queue || [];
    this.#emit(data.channelId);
  }

  #play(stream, track) {
    if (!this.#audioBox) {
      this.#audioBox = document.createElement('div');
      this.#audioBox.id = 'voice-audio';
      this.#audioBox.hidden = true;
      document.body.append(this.#audioBox);
    }
    let audio = this.#audios.get(stream.id);
    if (!audio) {
      audio = document.createElement('audio');
      audio.autoplay = true;
      audio.dataset.stream = stream.id;
      audio.srcObject = stream;
      audio.muted = Boolean(this.store.voice?.deafened);
      this.#audioBox.append(audio);
      this.#audios.set(stream.id, audio);
      stream.addEventListener('removetrack', () => {
        if (!stream.getTracks().length) {
          audio.remove();
          this.#audios.delete(stream.id);
        }
      });
    }
    audio.play?.().catch(() => { /* autoplay refused: played after the next click */ });
    track.addEventListener('ended', () => {
      if (!stream.getTracks().some((t) => t.readyState === 'live')) {
        audio.remove();
        this.#audios.delete(stream.id);
      }
    });
  }

  #setState(state) {
    const v = this.store.voice;
    if (!v || v.state === state) return;
    v.state = state;
    this.#emit(v.channelId);
  }

  /** Closes the connection and forgets it (the server is told by the caller, if at all). */
  #teardown({ keepWant = false }) {
    const v = this.store.voice;
    this.#gen++;
    clearTimeout(this.#healTimer);
    if (!keepWant) this.#want = null;
    this.#joined = false;
    this.#chain = Promise.resolve();
    if (this.#pc) {
      this.#pc.onicecandidate = this.#pc.ontrack = this.#pc.onconnectionstatechange = null;
      try { this.#pc.close(); } catch { /* closed */ }
    }
    this.#pc = null;
    if (window.__voiceflow) window.__voiceflow.voicePc = null;
    this.#stream?.getTracks().forEach((t) => t.stop());
    this.#stream = null;
    this.#micSender = null;
    this.video.reset();
    for (const audio of this.#audios.values()) { audio.srcObject = null; audio.remove(); }
    this.#audios.clear();
    this.store.voice = null;
    if (v) {
      this.store.room(v.channelId)?.voiceMembers.delete(this.me.id);
      this.#emit(v.channelId);
    }
  }

  #emit(roomId) { this.store.emit('voice', { roomId }); }
}
