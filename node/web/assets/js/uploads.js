// Attachments: uploads files to a room (POST /files, with progress, in room.uploads: topic
// 'uploads') and posts each stored file through Chat as a `file` message (a recording as a
// `voice_note`) with its `fileId` and an optional caption as its content, in the order picked.
// A failed upload (too large, empty, offline) stays in the tray with its error and posts
// nothing; once uploaded, the message is an ordinary pending send of chat.js (nonce, retries,
// survives a reload).
//
// The upload limit comes with every `hello` (`maxUploadBytes`, passed on by Chat), so a file
// over it is refused before a byte is sent; a 413 (a server that does not say, or a limit
// lowered meanwhile) teaches it too. The details of stored files (GET /files/:id/meta) are
// fetched once per file.

import { formatSize, sentence } from './dom.js';

/** Upload errors worth a retry (the others, such as too large or empty, stay as they are). */
const TRANSIENT = ['NETWORK', 'STORAGE_UNAVAILABLE', 'UNAVAILABLE', 'RATE_LIMITED', 'INTERNAL_ERROR'];

export class Uploads {
  /** fileId → Promise of the file's details (GET /files/:id/meta), fetched once. */
  #fileMeta = new Map();
  /** The server's upload limit in bytes (0: not known yet), from `hello`'s `maxUploadBytes`
   *  or else from a 413's `details.limit`: files over it are refused without uploading. */
  #fileLimit = 0;
  #nextUpload = 1;

  /** `send(roomId, content, {type, file, replyTo})` posts a stored file (Chat.send). */
  constructor({ api, store, send }) {
    this.api = api;
    this.store = store;
    this.send = send;
  }

  /** The limit `hello` announced. Older servers leave maxUploadBytes out (or 0): keep what a
   *  413 taught us. */
  noteLimit(maxUploadBytes) {
    const max = Number(maxUploadBytes);
    if (Number.isFinite(max) && max > 0) this.#fileLimit = max;
  }

  /**
   * Uploads files to a room and posts each as a message once stored, in the order given.
   * `kind`: 'file', or 'voice_note' for a recording; `caption`: the message's text (optional);
   * `replyTo` goes with the first. Progress and errors: room.uploads.
   */
  attach(roomId, files, { kind = 'file', replyTo = null, caption = '' } = {}) {
    const room = this.store.room(roomId);
    if (!room) return;
    let first = true;
    for (const file of files) {
      const u = {
        id: `u${this.#nextUpload++}`, roomId, file, name: file.name || 'file', size: file.size, kind,
        caption, replyTo: first ? replyTo : null, sent: 0, state: 'uploading', error: null, retryable: false,
      };
      first = false;
      room.uploads.set(u.id, u);
      this.#upload(room, u);
    }
    this.store.emit('uploads', { roomId });
  }

  /** Uploads a failed upload again. */
  retry(roomId, uploadId) {
    const room = this.store.room(roomId);
    const u = room?.uploads.get(uploadId);
    if (!u || u.state !== 'failed') return;
    this.#upload(room, u);
    this.store.emit('uploads', { roomId });
  }

  /** Cancels an upload in progress, or dismisses a failed one. */
  drop(roomId, uploadId) {
    const room = this.store.room(roomId);
    const u = room?.uploads.get(uploadId);
    if (!u) return;
    u.abort?.abort();
    room.uploads.delete(uploadId);
    this.store.emit('uploads', { roomId });
  }

  /** The details of an uploaded file (name, size, mimeType), fetched once per file. */
  fileMeta(fileId) {
    let p = this.#fileMeta.get(fileId);
    if (!p) {
      p = this.api.fileMeta(fileId);
      this.#fileMeta.set(fileId, p);
      p.catch(() => this.#fileMeta.delete(fileId)); // asked again next time
    }
    return p;
  }

  /** Uploads one file of attach(); once stored, posts it after the uploads picked before it. */
  #upload(room, u) {
    const fail = (message, retryable) => {
      u.state = 'failed';
      u.error = message;
      u.retryable = retryable;
      return null;
    };
    u.state = 'uploading';
    u.error = null;
    u.sent = 0;
    u.abort = new AbortController();
    let stored;
    if (!u.size) stored = Promise.resolve(fail(`“${u.name}” is empty: there is nothing to send.`, false));
    else if (this.#fileLimit && u.size > this.#fileLimit) stored = Promise.resolve(fail(tooLarge(u, this.#fileLimit), false));
    else {
      let last = 0;
      stored = this.api.uploadFile(room.id, u.file, {
        name: u.name,
        signal: u.abort.signal,
        onProgress: (sent) => {
          u.sent = sent;
          if (Date.now() - last > 100) { // a repaint at most every 100 ms
            last = Date.now();
            this.store.emit('uploads', { roomId: room.id });
          }
        },
      }).catch((e) => {
        if (e.code === 'ABORTED') return null;
        if (e.code === 'PAYLOAD_TOO_LARGE') {
          if (e.details?.limit) this.#fileLimit = e.details.limit;
          return fail(tooLarge(u, e.details?.limit), false);
        }
        const retryable = TRANSIENT.includes(e.code) || e.status >= 500;
        return fail(`Could not upload “${u.name}”: ${sentence(e.message)}`, retryable);
      });
    }
    // Posted in the order picked: wait for the uploads before this one first.
    room.uploadChain = room.uploadChain.then(() => stored).then((file) => {
      if (!file) {
        this.store.emit('uploads', { roomId: room.id });
        return;
      }
      room.uploads.delete(u.id);
      this.store.emit('uploads', { roomId: room.id });
      if (!this.store.rooms.has(room.id)) return;
      this.#fileMeta.set(file.id, Promise.resolve(file));
      this.send(room.id, u.caption || '', { type: u.kind, file, replyTo: u.replyTo });
    });
  }
}

function tooLarge(u, limit) {
  const max = limit ? `: the limit is ${formatSize(limit)}` : '';
  return `“${u.name}” is too large (${formatSize(u.size)})${max}.`;
}
