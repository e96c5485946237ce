// Voice notes: records the microphone (audio only) with MediaRecorder into one compressed file
// that uploads.js uploads and posts as a `voice_note` message.
//
// The container is the first one the browser records of: Ogg/Opus (Firefox), WebM/Opus
// (Chrome, Edge), MP4 (Safari). The server sniffs the type from the bytes and accepts a voice
// note only when it is audio; a refusal reaches the user as the send's error.

/** Containers in order of preference, with the file extension each gets. */
const TYPES = [
  ['audio/ogg;codecs=opus', 'ogg'],
  ['audio/webm;codecs=opus', 'webm'],
  ['audio/webm', 'webm'],
  ['audio/mp4', 'm4a'],
];

/** Speech needs little: 32 kbit/s Opus is clear and keeps a minute under 250 KB. */
const BITS_PER_SECOND = 32_000;

/** A recording stops (and is sent) by itself after this long. */
export const MAX_RECORDING_MS = 5 * 60_000;

/** Whether this browser can record voice notes (MediaRecorder and a microphone API; secure
 *  contexts only: https or localhost). */
export function canRecord() {
  return typeof window.MediaRecorder === 'function' && Boolean(navigator.mediaDevices?.getUserMedia);
}

function pickType() {
  for (const [type, ext] of TYPES) {
    if (MediaRecorder.isTypeSupported?.(type)) return { type, ext };
  }
  return { type: '', ext: 'webm' }; // the browser's default
}

/** A recording error in words for people. */
export function recordingError(err) {
  switch (err?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Microphone access was denied. Allow it in the browser to record voice notes.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone was found.';
    case 'NotReadableError':
      return 'The microphone is in use by another application.';
    default:
      return `Could not record: ${err?.message || 'the recording failed'}.`;
  }
}

/**
 * One recording. `start()` asks for the microphone and begins; `stop()` resolves with
 * {file, durationMs}; `cancel()` throws it away. Fires `tick` (every 250 ms while recording)
 * and `limit` (MAX_RECORDING_MS reached: call stop()).
 */
export class VoiceRecorder extends EventTarget {
  #stream = null;
  #recorder = null;
  #chunks = [];
  #startedAt = 0;
  #timer = 0;
  #ext = 'webm';

  get recording() { return this.#recorder?.state === 'recording'; }
  get elapsedMs() { return this.#startedAt ? Date.now() - this.#startedAt : 0; }

  async start() {
    if (this.#recorder) return;
    this.#stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
    const { type, ext } = pickType();
    this.#ext = ext;
    try {
      this.#recorder = new MediaRecorder(this.#stream, {
        ...(type ? { mimeType: type } : {}), audioBitsPerSecond: BITS_PER_SECOND,
      });
    } catch (e) {
      this.#release();
      throw e;
    }
    this.#chunks = [];
    this.#recorder.ondataavailable = (e) => { if (e.data?.size) this.#chunks.push(e.data); };
    this.#recorder.start(1000);
    this.#startedAt = Date.now();
    this.#timer = setInterval(() => {
      this.dispatchEvent(new Event('tick'));
      if (this.elapsedMs >= MAX_RECORDING_MS) this.dispatchEvent(new Event('limit'));
    }, 250);
  }

  /** Ends the recording; resolves with {file, durationMs} (file: null when nothing was heard). */
  stop() {
    const rec = this.#recorder;
    if (!rec) return Promise.resolve({ file: null, durationMs: 0 });
    const durationMs = this.elapsedMs;
    return new Promise((resolve) => {
      rec.onstop = () => {
        const type = (rec.mimeType || this.#chunks[0]?.type || 'audio/webm').split(';')[0];
        const blob = new Blob(this.#chunks, { type });
        this.#release();
        const file = blob.size ? new File([blob], `voice-note-${stamp(new Date())}.${this.#ext}`, { type }) : null;
        resolve({ file, durationMs });
      };
      if (rec.state === 'inactive') rec.onstop();
      else rec.stop();
    });
  }

  /** Throws the recording away. */
  cancel() {
    const rec = this.#recorder;
    if (rec) {
      rec.ondataavailable = null;
      rec.onstop = null;
      if (rec.state !== 'inactive') rec.stop();
    }
    this.#release();
  }

  #release() {
    clearInterval(this.#timer);
    this.#timer = 0;
    for (const t of this.#stream?.getTracks() || []) t.stop();
    this.#stream = null;
    this.#recorder = null;
    this.#startedAt = 0;
  }
}

/** 20240131-142501 */
function stamp(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}
