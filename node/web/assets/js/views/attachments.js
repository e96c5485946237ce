// Attachments in the message list and the composer's upload tray.
//
// A `file` message shows an image (PNG, JPEG, GIF, WebP: the type the server sniffed) inline
// with its name and a download link, any other file as a download link with its name and
// size; a `voice_note` shows an <audio controls> player. The message carries only the file's
// id: the name, size and type come from GET /files/:id/meta (once per file,
// chat.uploads.fileMeta).
//
// Loading: <img> and <audio> cannot send the Authorization header, and the page's CSP allows
// media from this origin only (no blob: URLs), so they load `/api/v1/files/:id?token=…`; a
// load that fails (the token expired meanwhile) asks for a fresh URL once. Downloads go
// through fetch with the header and an object URL (no token in the download history).
//
// Each attachment's element is kept per message and reused when its row is rebuilt (an
// edit, a reaction), so an image is not fetched again and a playing voice note keeps playing.

import { formatSize, h, icon } from '../dom.js';

/** Shown inline; anything else is a download. */
const INLINE_IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const KEEP = 300; // attachment elements kept for reuse
const cache = new Map(); // message id → element

/**
 * The attachment block of a `file` / `voice_note` message. `chat`: for the file's details and
 * bytes; `toast(text)`: for errors of a download.
 */
export function attachmentView(m, { chat, toast }) {
  const key = m.id;
  let el = cache.get(key);
  if (el) {
    cache.delete(key); // most recently used last
    cache.set(key, el);
    return el;
  }
  const what = m.type === 'voice_note' ? 'Voice note' : 'Attachment';
  el = h('div', { class: 'attachment attachment-loading', dataset: { fileId: m.fileId } },
    icon(m.type === 'voice_note' ? 'mic' : 'paperclip', 'attachment-icon'),
    h('span', { class: 'attachment-name', text: `${what}…` }));
  cache.set(key, el);
  while (cache.size > KEEP) cache.delete(cache.keys().next().value);
  chat.uploads.fileMeta(m.fileId).then((file) => {
    el.classList.remove('attachment-loading');
    if (m.type === 'voice_note') fillVoiceNote(el, m, file, chat);
    else if (INLINE_IMAGES.has(file.mimeType)) fillImage(el, file, chat, toast);
    else fillFile(el, file, chat, toast);
  }).catch((err) => {
    cache.delete(key); // try again when the row is next built
    el.classList.remove('attachment-loading');
    el.classList.add('attachment-missing');
    el.replaceChildren(icon('file', 'attachment-icon'),
      h('span', { class: 'attachment-name', text: what }),
      h('span', { class: 'attachment-meta', text: err.code === 'NOT_FOUND' ? 'file not found' : 'unavailable' }));
  });
  return el;
}

/** What an unsent attachment looks like: its name and size, from the file picked. */
export function pendingAttachment(p) {
  const voice = p.type === 'voice_note';
  return h('div', { class: 'attachment attachment-file pending-attachment' },
    icon(voice ? 'mic' : 'file', 'attachment-icon'),
    h('div', { class: 'attachment-info' },
      h('span', { class: 'attachment-name', text: voice ? 'Voice note' : p.file?.name || 'Attachment' }),
      p.file?.size ? h('span', { class: 'attachment-meta', text: formatSize(p.file.size) }) : null));
}

/** Sets a media element's source to the file, and once more with a fresh token if it fails. */
async function loadInto(media, file, chat) {
  let retried = false;
  media.addEventListener('error', async () => {
    if (retried || !media.isConnected) return;
    retried = true;
    try {
      media.src = await chat.api.fileSrc(file.id);
    } catch { /* signed out or offline: it stays broken */ }
  });
  media.src = await chat.api.fileSrc(file.id);
}

function downloadLink(file, chat, toast, { cls = 'attachment-name', label, content } = {}) {
  const a = h('a', {
    class: cls, href: file.url, download: file.name, 'aria-label': label || null,
    title: `Download ${file.name}`,
  }, content || file.name);
  a.addEventListener('click', async (e) => {
    e.preventDefault();
    if (a.getAttribute('aria-busy') === 'true') return;
    a.setAttribute('aria-busy', 'true');
    try {
      saveBlob(await chat.api.fileBlob(file.id), file.name);
    } catch (err) {
      toast(`Could not download ${file.name}: ${err.message}`);
    } finally {
      a.removeAttribute('aria-busy');
    }
  });
  return a;
}

/** Hands a Blob to the browser as a download named `name`. */
function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function fillImage(el, file, chat, toast) {
  el.classList.add('attachment-image');
  const img = h('img', { class: 'attachment-img', alt: file.name, decoding: 'async' });
  img.addEventListener('load', () => el.classList.add('loaded'), { once: true });
  el.replaceChildren(img,
    h('div', { class: 'attachment-caption' },
      downloadLink(file, chat, toast),
      h('span', { class: 'attachment-meta', text: formatSize(file.size) })));
  loadInto(img, file, chat).catch(() => {});
}

function fillFile(el, file, chat, toast) {
  el.classList.add('attachment-file');
  el.replaceChildren(
    icon('file', 'attachment-icon'),
    h('div', { class: 'attachment-info' },
      downloadLink(file, chat, toast, { label: `${file.name}, ${formatSize(file.size)}. Download` }),
      h('span', { class: 'attachment-meta', text: formatSize(file.size) })),
    downloadLink(file, chat, toast, {
      cls: 'icon-btn attachment-download', label: `Download ${file.name}`, content: icon('download'),
    }));
  // One tab stop: the name is the link; the icon repeats it for pointers.
  el.querySelector('.attachment-download').setAttribute('tabindex', '-1');
}

function fillVoiceNote(el, m, file, chat) {
  el.classList.add('attachment-voice');
  const audio = h('audio', {
    class: 'attachment-audio', controls: true, preload: 'metadata',
    'aria-label': `Voice note from ${m.username}`,
  });
  fixDuration(audio);
  el.replaceChildren(icon('mic', 'attachment-icon'), audio);
  loadInto(audio, file, chat).catch(() => {});
}

/**
 * Recordings in WebM carry no duration (MediaRecorder cannot know it up front), so the player
 * shows none: seeking past the end makes the browser find it, then back to the start.
 */
function fixDuration(audio) {
  audio.addEventListener('loadedmetadata', () => {
    if (audio.duration !== Infinity) return;
    const done = () => {
      if (!Number.isFinite(audio.duration)) return;
      audio.removeEventListener('durationchange', done);
      audio.currentTime = 0;
    };
    audio.addEventListener('durationchange', done);
    audio.currentTime = 1e7;
  });
}

/**
 * The composer's upload tray: one line per upload with its progress (a <progress> and
 * "Uploading… 40%"), Cancel; or its error (role=alert) with Retry (when it may help) and
 * Dismiss. Actions carry data-upload-action / data-upload-id (handled by the room view).
 */
export function renderUploads(tray, room) {
  const items = [...room.uploads.values()];
  tray.hidden = items.length === 0;
  const keep = new Set();
  for (const u of items) {
    keep.add(u.id);
    let li = tray.querySelector(`li[data-upload-id="${u.id}"]`);
    const sig = `${u.state}|${u.error || ''}`;
    if (!li || li.dataset.sig !== sig) {
      const next = uploadItem(u);
      next.dataset.sig = sig;
      if (li) li.replaceWith(next);
      else tray.append(next);
      li = next;
    }
    if (u.state === 'uploading') {
      const pct = u.size ? Math.min(100, Math.round((u.sent / u.size) * 100)) : 0;
      const bar = li.querySelector('progress');
      bar.value = u.sent;
      bar.max = u.size || 1;
      li.querySelector('.upload-status').textContent = pct >= 100 ? 'Processing…' : `Uploading… ${pct}%`;
    }
  }
  for (const li of [...tray.children]) if (!keep.has(li.dataset.uploadId)) li.remove();
}

function uploadItem(u) {
  const what = u.kind === 'voice_note' ? 'voice note' : u.name;
  if (u.state === 'failed') {
    return h('li', { class: 'upload failed', dataset: { uploadId: u.id } },
      icon('file', 'upload-icon'),
      h('p', { class: 'upload-error', role: 'alert', text: u.error }),
      u.retryable ? h('button', {
        class: 'btn btn-small btn-ghost', type: 'button', 'data-upload-action': 'retry', 'data-upload-id': u.id,
        'aria-label': `Retry uploading ${what}`,
      }, 'Retry') : null,
      h('button', {
        class: 'icon-btn', type: 'button', 'data-upload-action': 'dismiss', 'data-upload-id': u.id,
        'aria-label': `Dismiss the error about ${what}`, title: 'Dismiss',
      }, icon('close')));
  }
  const id = `upload-${u.id}`;
  return h('li', { class: 'upload', dataset: { uploadId: u.id } },
    icon(u.kind === 'voice_note' ? 'mic' : 'upload', 'upload-icon'),
    h('div', { class: 'upload-info' },
      h('span', { class: 'upload-name', id: `${id}-name`, text: u.kind === 'voice_note' ? 'Voice note' : u.name }),
      h('span', { class: 'upload-size', text: formatSize(u.size) }),
      h('progress', { class: 'upload-bar', max: String(u.size || 1), value: '0', 'aria-labelledby': `${id}-name` }),
      h('span', { class: 'upload-status', text: 'Uploading…' })),
    h('button', {
      class: 'icon-btn', type: 'button', 'data-upload-action': 'cancel', 'data-upload-id': u.id,
      'aria-label': `Cancel uploading ${what}`, title: 'Cancel upload',
    }, icon('close')));
}
