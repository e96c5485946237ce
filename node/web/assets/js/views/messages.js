// The message list of a room: day dividers, Discord-style grouping of consecutive messages by
// one author, optimistic (unsent) messages at the end, tombstones for deleted ones, and
// infinite scroll back through history.
//
// Rendering is keyed: each row (message id, unsent nonce, or day) keeps its element while its
// look is unchanged, so a new message or an older page touches only the rows that changed and
// the reading position stays put when history is prepended.
//
// Later: edits ("edited" mark), reactions and replies render in renderExtras() and get their
// buttons in the actions toolbar next to Delete.

import { avatar, formatDay, formatFull, formatTime, h, icon } from '../dom.js';
import { confirmDialog } from './dialog.js';

const GROUP_MS = 7 * 60_000;
const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

export class MessageList {
  #rows = new Map(); // key → {el, sig}
  #observer = null;
  #initialScrollDone = false;
  #frame = 0;
  #queued = { reasons: new Set(), live: [] };

  /**
   * @param room RoomState; @param chat Chat
   * @param onNewBelow called with a count when messages arrive while scrolled up
   */
  constructor({ room, chat, shell, onNewBelow }) {
    this.room = room;
    this.chat = chat;
    this.shell = shell;
    this.onNewBelow = onNewBelow;
    this.top = h('div', { class: 'history-top' });
    this.list = h('ol', { class: 'message-list' });
    this.el = h('div', {
      class: 'messages', tabindex: '0', role: 'region',
      'aria-label': `Messages in ${room.name}`, 'aria-describedby': 'messages-help',
    }, h('p', { id: 'messages-help', class: 'sr-only' },
      'Arrow keys move between messages. Delete removes the focused message if you may delete it.'),
    this.top, this.list);
    this.sentinel = this.top;
    this.#observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.loadOlder();
    }, { root: this.el, rootMargin: '600px 0px 0px 0px' });
    this.#observer.observe(this.sentinel);
    this.el.addEventListener('scroll', () => {
      if (this.atBottom()) this.onNewBelow(0);
    }, { passive: true });
    // Delegated actions: delete, retry, discard.
    this.el.addEventListener('click', (e) => this.#onClick(e));
    this.el.addEventListener('keydown', (e) => this.#onKey(e));
  }

  destroy() {
    this.#observer.disconnect();
    cancelAnimationFrame(this.#frame);
  }

  /**
   * Asks for a render on the next frame; a burst of events (a replay of hundreds of messages)
   * becomes one render.
   */
  schedule(reason = '', messageId = null) {
    this.#queued.reasons.add(reason);
    if (reason === 'live' && messageId) this.#queued.live.push(messageId);
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      const { reasons, live } = this.#queued;
      this.#queued = { reasons: new Set(), live: [] };
      const reason_ = ['reset', 'sent', 'older', 'latest'].find((r) => reasons.has(r)) || [...reasons].pop();
      this.render(reason_, live);
    });
  }

  atBottom() {
    const el = this.el;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  scrollToBottom() { this.el.scrollTop = this.el.scrollHeight; }

  async loadOlder() {
    const { room } = this;
    if (!room.loadedLatest || !room.hasMore || room.loadingOlder) return;
    try {
      await this.chat.loadOlder(room);
    } catch {
      return; // offline: the user can scroll again later
    }
    // Still near the top (short pages, tall screen)? Keep going.
    requestAnimationFrame(() => {
      if (this.el.isConnected && this.el.scrollTop < 600 && room.hasMore) this.loadOlder();
    });
  }

  /** Brings the DOM in line with the room's state. `liveIds`: messages that just arrived. */
  render(reason = '', liveIds = []) {
    const wasAtBottom = this.atBottom();
    const anchor = wasAtBottom ? null : this.#anchor();
    const rows = this.#rows;
    const desired = this.#rowsFromState();
    const keep = new Set(desired.map((r) => r.key));
    for (const [key, row] of rows) {
      if (!keep.has(key)) {
        row.el.remove();
        rows.delete(key);
      }
    }
    let prev = null;
    for (const r of desired) {
      let row = rows.get(r.key);
      if (!row || row.sig !== r.sig) {
        const el = r.build();
        if (row) row.el.replaceWith(el);
        row = { el, sig: r.sig };
        rows.set(r.key, row);
      }
      const want = prev ? prev.nextSibling : this.list.firstChild;
      if (want !== row.el) this.list.insertBefore(row.el, want);
      prev = row.el;
    }
    this.#renderTop();

    if (!this.#initialScrollDone && this.room.loadedLatest) {
      this.#initialScrollDone = true;
      this.scrollToBottom();
    } else if (reason === 'sent' || reason === 'reset' || wasAtBottom) {
      this.scrollToBottom();
    } else if (anchor && anchor.el.isConnected) {
      this.el.scrollTop += anchor.el.offsetTop - anchor.top;
    }
    if (!wasAtBottom && !['sent', 'reset'].includes(reason)) {
      const fromOthers = liveIds.filter((id) => {
        const m = this.room.messages.get(id);
        return m && m.userId !== this.chat.me.id;
      });
      if (fromOthers.length) this.onNewBelow(fromOthers.length);
    }
  }

  /** The first row at least partly visible, and where it was. */
  #anchor() {
    const top = this.el.scrollTop;
    for (const child of this.list.children) {
      if (child.offsetTop + child.offsetHeight > top) return { el: child, top: child.offsetTop };
    }
    return null;
  }

  #renderTop() {
    const { room } = this;
    let content;
    if (room.loadingOlder || (!room.loadedLatest && !room.ids.length)) {
      content = h('p', { class: 'history-loading', role: 'status' }, 'Loading messages…');
    } else if (room.loadedLatest && !room.hasMore) {
      content = h('div', { class: 'room-start' },
        h('div', { class: 'room-start-icon', 'aria-hidden': 'true' }, icon('hash')),
        h('h2', { text: `Welcome to #${room.name}!` }),
        h('p', { text: 'This is the start of the room.' }));
    } else {
      content = h('p', { class: 'history-more' }, 'Scroll up for older messages');
    }
    const sig = content.textContent;
    if (this.top.dataset.sig !== sig) {
      this.top.dataset.sig = sig;
      this.top.replaceChildren(content);
    }
  }

  #rowsFromState() {
    const { room, chat } = this;
    const out = [];
    let last = null; // {userId, at, day}
    const push = (kind, item, key) => {
      const at = new Date(item.createdAt);
      const day = dayKey(at);
      if (!last || last.day !== day) {
        out.push({ key: `d:${day}`, sig: day, build: () => dayDivider(at) });
        last = null;
      }
      const grouped = Boolean(last && last.userId === item.userId && at - last.at < GROUP_MS);
      last = { userId: item.userId, at, day };
      if (kind === 'msg' && item.type === 'system') {
        last = null; // a notice breaks a run of messages from one author
        out.push({ key: `m:${item.id}`, sig: `s|${item.content}`, build: () => systemRow(item) });
      } else if (kind === 'msg') {
        const canDelete = chat.canDelete(room, item);
        const reactions = (item.reactions || []).map((r) => `${r.emoji}${r.count}`).join(',');
        const sig = `${grouped}|${item.deleted ? 1 : 0}|${canDelete}|${item.content}|${item.editedAt || ''}|${reactions}`;
        out.push({ key: `m:${item.id}`, sig, build: () => messageRow(item, { grouped, canDelete }) });
      } else {
        const sig = `${grouped}|${item.state}|${item.error || ''}`;
        out.push({ key: `p:${item.nonce}`, sig, build: () => pendingRow(item, { grouped }) });
      }
    };
    for (const id of room.ids) push('msg', room.messages.get(id), id);
    const pending = [...room.pending.values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
    for (const p of pending) push('pending', p, p.nonce);
    return out;
  }

  /** Up/Down move focus between messages; Delete deletes the focused one (if allowed). */
  #onKey(e) {
    const rows = [...this.list.querySelectorAll('li.msg')];
    if (!rows.length) return;
    const current = e.target.closest?.('li.msg');
    let i = rows.indexOf(current);
    if (e.key === 'ArrowUp' || e.key === 'ArrowDown' || e.key === 'Home' || e.key === 'End') {
      if (e.target !== this.el && !current) return;
      e.preventDefault();
      if (e.key === 'Home') i = 0;
      else if (e.key === 'End') i = rows.length - 1;
      else if (i < 0) i = e.key === 'ArrowUp' ? rows.length - 1 : 0;
      else i = Math.max(0, Math.min(rows.length - 1, i + (e.key === 'ArrowUp' ? -1 : 1)));
      rows[i].focus();
      if (i === 0) this.loadOlder();
    } else if ((e.key === 'Delete' || e.key === 'Backspace') && current) {
      const button = current.querySelector('button[data-action="delete"]');
      if (button) {
        e.preventDefault();
        button.click();
      }
    }
  }

  async #onClick(e) {
    const button = e.target.closest('button[data-action]');
    if (!button) return;
    const row = button.closest('li');
    const { room, chat } = this;
    switch (button.dataset.action) {
      case 'delete': {
        const id = row.dataset.messageId;
        const ok = await confirmDialog({
          title: 'Delete message',
          message: 'Delete this message for everyone? This cannot be undone.',
          confirmLabel: 'Delete', danger: true,
        });
        if (!ok) return;
        try {
          await chat.deleteMessage(room.id, id);
        } catch (err) {
          this.shell.toast(`Could not delete the message: ${err.message}`);
        }
        break;
      }
      case 'retry':
        chat.retry(room.id, row.dataset.nonce);
        break;
      case 'discard':
        chat.discard(room.id, row.dataset.nonce);
        break;
      default:
        break;
    }
  }
}

function dayKey(d) { return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`; }

function dayDivider(date) {
  return h('li', { class: 'day-divider', role: 'separator', 'aria-label': formatDay(date) },
    h('span', { text: formatDay(date) }));
}

function header(item, at) {
  return h('div', { class: 'msg-head' },
    h('span', { class: 'msg-author', text: item.username }),
    h('time', { class: 'msg-time', datetime: at.toISOString(), title: formatFull(at), text: formatTime(at) }));
}

function body(item, grouped, at) {
  return [
    grouped ? h('span', { class: 'sr-only', text: `${item.username}, ${formatTime(at)}: ` }) : header(item, at),
    item.deleted
      ? h('p', { class: 'msg-content msg-deleted' }, 'This message was deleted.')
      : h('p', { class: 'msg-content' }, ...linkify(item.content)),
  ];
}

function gutter(item, grouped, at) {
  return grouped
    ? h('time', { class: 'msg-gutter-time', datetime: at.toISOString(), 'aria-hidden': 'true', text: formatTime(at) })
    : avatar(item.userId, item.username);
}

function messageRow(m, { grouped, canDelete }) {
  const at = new Date(m.createdAt);
  return h('li', {
    class: `msg${grouped ? ' grouped' : ''}${m.deleted ? ' deleted' : ''}`,
    dataset: { messageId: m.id, author: m.username }, tabindex: '-1',
  },
  h('div', { class: 'msg-gutter' }, gutter(m, grouped, at)),
  h('div', { class: 'msg-main' }, ...body(m, grouped, at), renderExtras(m)),
  canDelete ? h('div', { class: 'msg-actions' },
    h('button', {
      class: 'icon-btn', type: 'button', 'data-action': 'delete', tabindex: '-1',
      'aria-label': `Delete message from ${m.username}`, title: 'Delete',
    }, icon('trash'))) : null);
}

function pendingRow(p, { grouped }) {
  const at = new Date(p.createdAt);
  const status = {
    sending: h('p', { class: 'msg-status' }, 'Sending…'),
    queued: h('p', { class: 'msg-status' }, 'Waiting for the connection — will send automatically.'),
    failed: h('p', { class: 'msg-status msg-failed', role: 'alert' },
      `Not sent: ${p.error || 'error'} `,
      h('button', { class: 'link-btn', type: 'button', 'data-action': 'retry' }, 'Retry'),
      ' · ',
      h('button', { class: 'link-btn', type: 'button', 'data-action': 'discard' }, 'Discard')),
  }[p.state] || null;
  return h('li', {
    class: `msg pending${grouped ? ' grouped' : ''} ${p.state}`,
    dataset: { nonce: p.nonce, author: p.username },
  },
  h('div', { class: 'msg-gutter' }, gutter(p, grouped, at)),
  h('div', { class: 'msg-main' }, ...body(p, grouped, at), status));
}

/** Text with http(s) links made clickable (as text nodes and anchors, never HTML). */
function linkify(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    if (match.index > last) parts.push(text.slice(last, match.index));
    parts.push(h('a', { href: match[0], target: '_blank', rel: 'noopener noreferrer nofollow', text: match[0] }));
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** Reactions, replies and the "edited" mark go here when the server supports them. */
/** Edited mark and reaction counts under a message. */
function renderExtras(m) {
  const parts = [];
  if (m.editedAt && !m.deleted) parts.push(h('span', { class: 'msg-edited', text: '(edited)' }));
  for (const r of m.reactions || []) {
    parts.push(h('span', { class: 'reaction', title: `${r.count} × ${r.emoji}`, text: `${r.emoji} ${r.count}` }));
  }
  return parts.length ? h('div', { class: 'msg-extras' }, ...parts) : null;
}

/** A server notice (someone joined or left): a quiet line, not a message bubble. */
function systemRow(m) {
  const at = new Date(m.createdAt);
  return h('li', { class: 'sysmsg', dataset: { messageId: m.id } },
    h('span', { text: m.content }),
    h('time', { datetime: m.createdAt, text: ` · ${at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}` }));
}
