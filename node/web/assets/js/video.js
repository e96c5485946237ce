// Camera and screen share on the voice connection (see wire/PROTOCOL.md, "Video and screen
// share"). The join's offer carries, after the microphone, three send-only sections with no
// track: camera (video), screen (video), the screen's sound (audio) — the server tells them
// apart by that order. Turning the camera on puts a track on the camera's sender
// (replaceTrack, no renegotiation) and says `voice:state {video: true}`; the server then adds a
// `camera-<sessionId>` track at everyone else (a server offer). Screen share likewise with
// getDisplayMedia (its sound too, when the browser offers it).
//
// Incoming video: which receiver is whose is read from the remote description (the `a=msid`
// of the receiver's section names `camera-<sessionId>` / `screen-<sessionId>`), after every
// negotiation. One <video> element per such track is kept here and handed to the panel (moving
// an element between renders keeps it playing). A tile scrolled out of sight is paused at the
// server (`voice:subscribe {paused: true}`) and resumed when it shows again; a camera's tile
// asks for the simulcast layer that fits the size it is shown at (`voice:subscribe {layer}`).
//
// Devices: the microphone and camera in use can be switched (replaceTrack) from the panel.

export class Video {
  #pc = null;
  #camera = null;
  #screen = null;
  #screenAudio = null;
  #camStream = null;
  #screenStream = null;
  /** track name (`camera-<sessionId>`) → <video> */
  #elements = new Map();
  /** track name → paused at the server */
  #paused = new Map();
  /** camera track name → the largest simulcast layer asked for it */
  #layers = new Map();
  #observer = null;
  #sizes = null;
  #local = null;
  /** The last enumerated devices ({audio, video}), for the panel's selects. */
  deviceList = { audio: [], video: [] };

  constructor({ socket, store, notify, voice }) {
    this.socket = socket;
    this.store = store;
    this.notify = notify;
    this.voice = voice;
    this.cameraId = localStorage.getItem('voiceflow.camera') || '';
    this.micId = localStorage.getItem('voiceflow.mic') || '';
  }

  /** Adds the send-only sections for camera, screen and screen sound (before the offer). */
  prepare(pc) {
    this.reset();
    this.#pc = pc;
    // Simulcast: three layers, lowest first (the server numbers them by their order); the
    // server forwards each viewer the one that fits its bandwidth estimate.
    this.#camera = pc.addTransceiver('video', {
      direction: 'sendonly',
      sendEncodings: [
        { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
        { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
        { rid: 'f', maxBitrate: 1_500_000 },
      ],
    });
    // A screen share in two layers (half and full size): a viewer whose bandwidth cannot
    // take the full one gets the half rather than a frozen picture.
    this.#screen = pc.addTransceiver('video', {
      direction: 'sendonly',
      sendEncodings: [
        { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 600_000 },
        { rid: 'f', maxBitrate: 2_500_000 },
      ],
    });
    this.#screenAudio = pc.addTransceiver('audio', { direction: 'sendonly' });
  }

  /** Stops what this client sends and forgets the connection's video. */
  reset() {
    this.#camStream?.getTracks().forEach((t) => t.stop());
    this.#screenStream?.getTracks().forEach((t) => t.stop());
    this.#camStream = this.#screenStream = null;
    this.#observer?.disconnect();
    this.#observer = null;
    this.#sizes?.disconnect();
    this.#sizes = null;
    this.#layers.clear();
    for (const el of this.#elements.values()) { el.srcObject = null; el.remove(); }
    this.#elements.clear();
    this.#paused.clear();
    this.#pc = this.#camera = this.#screen = this.#screenAudio = null;
  }

  /** This client's own camera, mirrored in its tile. */
  localElement() {
    if (!this.#camStream) return null;
    if (!this.#local) {
      this.#local = document.createElement('video');
      Object.assign(this.#local, { autoplay: true, muted: true, playsInline: true, className: 'voice-video self' });
    }
    if (this.#local.srcObject !== this.#camStream) this.#local.srcObject = this.#camStream;
    this.#local.play?.().catch(() => {});
    return this.#local;
  }

  get cameraOn() { return Boolean(this.#camStream); }
  get screenOn() { return Boolean(this.#screenStream); }

  /** The <video> of a participant's track (`camera` or `screen`), if it is being received. */
  element(sessionId, kind) { return this.#elements.get(`${kind}-${sessionId}`) ?? null; }

  /** After a negotiation or a new track: maps receivers to their publishers' tracks. */
  refresh() {
    const pc = this.#pc;
    const sdp = pc?.remoteDescription?.sdp;
    if (!sdp) return;
    const names = msidsByMid(sdp);
    const live = new Set();
    for (const t of pc.getTransceivers()) {
      const track = t.receiver?.track;
      if (!track || track.kind !== 'video' || !t.mid) continue;
      const dir = t.currentDirection || '';
      if (!dir.includes('recv')) continue;
      const name = names.get(t.mid);
      if (!name || !/^(camera|screen)-/.test(name)) continue;
      live.add(name);
      let el = this.#elements.get(name);
      if (!el) {
        el = document.createElement('video');
        el.autoplay = true;
        el.muted = true;
        el.playsInline = true;
        el.dataset.track = name;
        el.className = 'voice-video';
        this.#elements.set(name, el);
        this.#watch(el);
      }
      if (el.srcObject?.getVideoTracks()[0] !== track) el.srcObject = new MediaStream([track]);
      el.play?.().catch(() => {});
    }
    for (const [name, el] of this.#elements) {
      if (!live.has(name)) {
        el.srcObject = null;
        el.remove();
        this.#elements.delete(name);
        this.#paused.delete(name);
        this.#layers.delete(name);
      }
    }
    this.store.emit('voice', { roomId: this.store.voice?.channelId });
  }

  async setCamera(on) {
    const v = this.store.voice;
    if (!v || !this.#camera) return;
    if (on) {
      let stream;
      try {
        const video = this.cameraId ? { deviceId: { exact: this.cameraId } } : true;
        stream = await navigator.mediaDevices.getUserMedia({ video });
      } catch (e) {
        this.notify(`No camera available: ${e.message}`);
        return;
      }
      try {
        await this.#state({ video: true });
      } catch (e) {
        stream.getTracks().forEach((t) => t.stop());
        this.notify(refusal(e, 'turn the camera on'));
        return;
      }
      this.#camStream?.getTracks().forEach((t) => t.stop());
      this.#camStream = stream;
      await this.#camera.sender.replaceTrack(stream.getVideoTracks()[0] || null);
    } else {
      await this.#camera.sender.replaceTrack(null);
      this.#camStream?.getTracks().forEach((t) => t.stop());
      this.#camStream = null;
      await this.#state({ video: false }).catch(() => {});
    }
    this.store.emit('voice', { roomId: v.channelId });
  }

  async setScreen(on) {
    const v = this.store.voice;
    if (!v || !this.#screen) return;
    if (on) {
      let stream;
      try {
        stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
      } catch (e) {
        if (e.name !== 'NotAllowedError') this.notify(`Could not share the screen: ${e.message}`);
        return;
      }
      try {
        await this.#state({ screen: true });
      } catch (e) {
        stream.getTracks().forEach((t) => t.stop());
        this.notify(refusal(e, 'share the screen'));
        return;
      }
      this.#screenStream = stream;
      const [video] = stream.getVideoTracks();
      // The browser's own "Stop sharing" ends the track.
      video?.addEventListener('ended', () => { if (this.#screenStream === stream) this.setScreen(false); });
      await this.#screen.sender.replaceTrack(video || null);
      await this.#screenAudio.sender.replaceTrack(stream.getAudioTracks()[0] || null);
    } else {
      await this.#screen.sender.replaceTrack(null);
      await this.#screenAudio.sender.replaceTrack(null);
      this.#screenStream?.getTracks().forEach((t) => t.stop());
      this.#screenStream = null;
      await this.#state({ screen: false }).catch(() => {});
    }
    this.store.emit('voice', { roomId: v.channelId });
  }

  toggleCamera() { return this.setCamera(!this.cameraOn); }
  toggleScreen() { return this.setScreen(!this.screenOn); }

  /** Microphones and cameras ({audio, video}: [{deviceId, label}]). */
  async devices() {
    const all = await navigator.mediaDevices?.enumerateDevices?.().catch(() => []) ?? [];
    const pick = (kind) => all.filter((d) => d.kind === kind)
      .map((d, i) => ({ deviceId: d.deviceId, label: d.label || `${kind === 'audioinput' ? 'Microphone' : 'Camera'} ${i + 1}` }));
    this.deviceList = { audio: pick('audioinput'), video: pick('videoinput') };
    return this.deviceList;
  }

  /** Uses another camera (now, if it is on). */
  async chooseCamera(deviceId) {
    this.cameraId = deviceId;
    localStorage.setItem('voiceflow.camera', deviceId);
    if (!this.#camStream || !this.#camera) return;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { deviceId: { exact: deviceId } } });
      this.#camStream.getTracks().forEach((t) => t.stop());
      this.#camStream = stream;
      await this.#camera.sender.replaceTrack(stream.getVideoTracks()[0] || null);
    } catch (e) {
      this.notify(`Could not use that camera: ${e.message}`);
    }
  }

  /** Uses another microphone (the voice connection's sender, now). */
  async chooseMic(deviceId) {
    this.micId = deviceId;
    localStorage.setItem('voiceflow.mic', deviceId);
    await this.voice.replaceMic(deviceId).catch((e) => this.notify(`Could not use that microphone: ${e.message}`));
  }

  async #state(change) {
    const v = this.store.voice;
    const view = await this.socket.request('voice:state', { channelId: v.channelId, ...change });
    this.voice.upsert(view);
  }

  /** Pauses a tile's video at the server while it is out of sight, and asks for the camera
   *  layer that fits the size it is shown at. */
  #watch(el) {
    if (typeof IntersectionObserver === 'function') {
      if (!this.#observer) {
        this.#observer = new IntersectionObserver((entries) => {
          for (const e of entries) this.#setPaused(e.target.dataset.track, !e.isIntersecting);
        });
      }
      this.#observer.observe(el);
    }
    if (typeof ResizeObserver === 'function' && el.dataset.track.startsWith('camera-')) {
      if (!this.#sizes) {
        this.#sizes = new ResizeObserver((entries) => {
          for (const e of entries) this.#fitLayer(e.target.dataset.track, e.contentRect.width);
        });
      }
      this.#sizes.observe(el);
    }
  }

  /** The layer for a tile `width` CSS pixels wide (a camera's layers are a quarter, half and
   *  all of its width, 1280 for most webcams): what covers the tile's device pixels. */
  #fitLayer(name, width) {
    const v = this.store.voice;
    // A tile out of the layout (hidden) keeps its layer; the visibility observer pauses it.
    if (!v || !name || width <= 0) return;
    const px = width * (window.devicePixelRatio || 1);
    const layer = px <= 320 ? 'low' : px <= 640 ? 'medium' : 'high';
    if (this.#layers.get(name) === layer) return;
    const [kind, sessionId] = name.split('-');
    const who = [...v.participants.values()].find((p) => p.sessionId === sessionId);
    if (!who) return;
    this.#layers.set(name, layer);
    const paused = this.#paused.get(name) ?? false;
    this.socket.request('voice:subscribe', { channelId: v.channelId, userId: who.userId, track: kind, paused, layer })
      .catch(() => this.#layers.delete(name));
  }

  #setPaused(name, paused) {
    const v = this.store.voice;
    if (!v || !name || (this.#paused.get(name) ?? false) === paused) return;
    const [kind, sessionId] = name.split('-');
    const who = [...v.participants.values()].find((p) => p.sessionId === sessionId);
    if (!who) return;
    this.#paused.set(name, paused);
    this.socket.request('voice:subscribe', { channelId: v.channelId, userId: who.userId, track: kind, paused })
      .catch(() => this.#paused.delete(name));
  }
}

/** mid → the track id of its `a=msid:<stream> <track>` line. */
export function msidsByMid(sdp) {
  const out = new Map();
  let mid = null; let msid = null;
  const flush = () => { if (mid && msid) out.set(mid, msid); };
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) { flush(); mid = null; msid = null; }
    else if (line.startsWith('a=mid:')) mid = line.slice(6).trim();
    else if (line.startsWith('a=msid:')) msid = line.slice(7).trim().split(' ')[1] || null;
  }
  flush();
  return out;
}

function refusal(e, what) {
  if (e.code === 'FORBIDDEN') return `You may not ${what} here.`;
  if (e.code === 'ROOM_FULL') return `Could not ${what}: ${e.message}`;
  return `Could not ${what}: ${e.message}`;
}
