// The message list of a room: day dividers, Discord-style grouping of consecutive messages by
// one author, optimistic (unsent) messages at the end, tombstones for deleted ones, and
// infinite scroll back through history.
//
// Rendering is keyed: each row (message id, unsent nonce, or day) keeps its element while its
// look is unchanged, so a new message or an older page touches only the rows that changed and
// the reading position stays put when history is prepended.
//
// Rich messages: the hover toolbar (and keys on a focused message: + react, R reply, E edit,
// Delete) opens the emoji picker, starts a reply (the room view shows the "replying to" bar),
// opens the inline editor (Enter saves, Escape cancels) or deletes; reaction chips toggle this
// user's reaction. Row builders live in views/message-row.js; attachments (images, files,
// voice notes) in views/attachments.js. Rows that grow later (an image that loaded) keep the
// list at the newest message when it was there.

import { h, icon } from '../dom.js';
import { attachmentView } from './attachments.js';
import { confirmDialog } from './dialog.js';
import { encodeMentions } from './mention-picker.js';
import { dayDivider, dayKey, messageRow, pendingRow, showMentions, systemRow } from './message-row.js';

const GROUP_MS = 7 * 60_000;

export class MessageList {
  #rows = new Map(); // key → {el, sig}
  #observer = null;
  #resize = null;
  #initialScrollDone = false;
  #frame = 0;
  #queued = { reasons: new Set(), live: [] };
  /** The message being edited (id) and its draft text. */
  #editing = null;
  #draft = '';
  /** The message whose emoji picker is open (id). */
  #picker = null;
  /** Messages of blocked people the user chose to show anyway. */
  #revealed = new Set();
  /** A search result shown (id): renders keep it in view until the user scrolls or sends. */
  #pinned = null;

  /**
   * @param room RoomState; @param chat Chat
   * @param onNewBelow called with a count when messages arrive while scrolled up
   * @param onReply called with a message when the user starts a reply to it
   */
  constructor({ room, chat, shell, onNewBelow, onReply = () => {} }) {
    this.room = room;
    this.chat = chat;
    this.shell = shell;
    this.onNewBelow = onNewBelow;
    this.onReply = onReply;
    room.atBottom = true; // a list opens at the newest messages
    this.top = h('div', { class: 'history-top' });
    this.list = h('ol', { class: 'message-list' });
    this.el = h('div', {
      class: 'messages', tabindex: '0', role: 'region',
      'aria-label': `Messages in ${room.displayName(chat.me)}`, 'aria-describedby': 'messages-help',
    }, h('p', { id: 'messages-help', class: 'sr-only' },
      'Arrow keys move between messages. On a message: plus adds a reaction, R replies, E edits '
      + 'your own message, Delete removes it if you may.'),
    this.top, this.list);
    this.sentinel = this.top;
    this.#observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.loadOlder();
    }, { root: this.el, rootMargin: '600px 0px 0px 0px' });
    this.#observer.observe(this.sentinel);
    // An image or player that loaded grows its row: stay at the bottom if we were there.
    this.#resize = new ResizeObserver(() => {
      if (room.atBottom && this.#initialScrollDone) this.scrollToBottom();
    });
    this.#resize.observe(this.list);
    this.attachment = (m) => attachmentView(m, { chat, toast: (text) => shell.toast(text) });
    this.el.addEventListener('scroll', () => {
      const bottom = this.atBottom();
      if (bottom !== room.atBottom) {
        room.atBottom = bottom;
        // Scrolled down to the newest: they are read now.
        if (bottom) chat.store.emit('seen', { roomId: room.id });
      }
      if (bottom) this.onNewBelow(0);
    }, { passive: true });
    // Delegated actions: toolbar, chips, picker, editor, retry, discard.
    // Scrolling by hand lets go of a search result kept in view.
    for (const type of ['wheel', 'touchmove', 'keydown']) {
      this.el.addEventListener(type, () => { this.#pinned = null; }, { passive: true });
    }
    this.el.addEventListener('click', (e) => this.#onClick(e));
    this.el.addEventListener('keydown', (e) => this.#onKey(e));
    this.el.addEventListener('input', (e) => {
      if (e.target.dataset?.editor) {
        this.#draft = e.target.value;
        autosize(e.target);
      }
    });
    this.onDocClick = (e) => {
      if (this.#picker && !e.target.closest?.('.emoji-picker, [data-action="react"]')) this.closePicker();
    };
    document.addEventListener('click', this.onDocClick);
  }

  destroy() {
    this.#observer.disconnect();
    this.#resize.disconnect();
    cancelAnimationFrame(this.#frame);
    document.removeEventListener('click', this.onDocClick);
  }

  /** Opens the inline editor on one of this user's messages. */
  startEdit(messageId) {
    const m = this.room.messages.get(messageId);
    if (!m || !this.chat.canEdit(m)) return;
    this.#editing = messageId;
    this.#draft = showMentions(m.content, this.#names());
    this.#picker = null;
    this.render('edit');
    const box = this.list.querySelector(`[data-editor="${messageId}"]`);
    if (box) {
      autosize(box);
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
    }
  }

  cancelEdit({ focus = true } = {}) {
    const id = this.#editing;
    if (!id) return;
    this.#editing = null;
    this.render('edit');
    if (focus) this.#rowOf(id)?.focus();
  }

  async saveEdit() {
    const id = this.#editing;
    const m = this.room.messages.get(id);
    if (!m) return this.cancelEdit();
    const text = encodeMentions(this.#draft, this.room, this.chat.me);
    if (!text.trim()) {
      // An emptied message: offer to delete it instead.
      this.cancelEdit();
      return this.#askDelete(id);
    }
    if (text === m.content) return this.cancelEdit();
    try {
      await this.chat.editMessage(this.room.id, id, text);
      if (this.#editing === id) this.cancelEdit();
    } catch (err) {
      this.shell.toast(`Could not save the edit: ${err.message}`);
    }
    return undefined;
  }

  /** Opens (or closes) the emoji picker of a message; focus goes to its first emoji. */
  togglePicker(messageId) {
    this.#picker = this.#picker === messageId ? null : messageId;
    this.render('picker');
    if (this.#picker) this.list.querySelector('.emoji-picker button')?.focus();
  }

  closePicker({ focus = false } = {}) {
    const id = this.#picker;
    if (!id) return;
    this.#picker = null;
    this.render('picker');
    if (focus) this.#rowOf(id)?.focus();
  }

  /** Scrolls to a message (a reply's parent, a search result) and focuses it; `keep` leaves
   * it marked (a search result) until another is revealed. */
  reveal(messageId, { keep = false } = {}) {
    const row = this.#rowOf(messageId);
    if (!row) return;
    row.scrollIntoView({ block: 'center' });
    this.list.querySelectorAll('.search-target').forEach((r) => r.classList.remove('search-target'));
    if (keep) row.classList.add('search-target');
    this.#pinned = keep ? messageId : null;
    row.classList.add('flash');
    setTimeout(() => row.classList.remove('flash'), 1500);
    row.focus({ preventScroll: true });
  }

  #rowOf(messageId) {
    return this.list.querySelector(`li[data-message-id="${CSS.escape(messageId)}"]`);
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
    const focusedEditor = document.activeElement?.dataset?.editor || null;
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
    if (focusedEditor && document.activeElement?.dataset?.editor !== focusedEditor) {
      // The row was rebuilt (a reaction arrived): keep typing where we were.
      const box = this.list.querySelector(`[data-editor="${focusedEditor}"]`);
      box?.focus();
      box?.setSelectionRange(box.value.length, box.value.length);
    }

    const pinned = this.#pinned && reason !== 'sent' ? this.#rowOf(this.#pinned) : null;
    if (pinned) {
      this.#initialScrollDone ||= this.room.loadedLatest;
      pinned.scrollIntoView({ block: 'center' });
    } else if (!this.#initialScrollDone && this.room.loadedLatest) {
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
      const dm = room.kind === 'dm';
      const peer = room.displayName(this.chat.me);
      content = h('div', { class: 'room-start' },
        h('div', { class: 'room-start-icon', 'aria-hidden': 'true' }, icon({ dm: 'at', voice: 'volume', stage: 'stage' }[room.kind] || 'hash')),
        h('h2', { text: dm ? peer : `Welcome to #${room.name}!` }),
        h('p', { text: dm ? `This is the beginning of your conversation with ${peer}.` : 'This is the start of the room.' }));
    } else {
      content = h('p', { class: 'history-more' }, 'Scroll up for older messages');
    }
    const sig = content.textContent;
    if (this.top.dataset.sig !== sig) {
      this.top.dataset.sig = sig;
      this.top.replaceChildren(content);
    }
  }

  /** How mentions in this room are shown: users by their current name in the room (else
   *  as an author here), roles by their community's names; `sig` changes when they do. */
  #names() {
    const { room } = this;
    const community = room.communityId ? this.shell?.communities?.get(room.communityId) : null;
    const roles = community?.roles || [];
    const user = (id) => room.members.get(id)?.username
      || [...room.messages.values()].find((m) => m.userId === id)?.username;
    const role = (id) => roles.find((r) => r.id === id)?.name;
    const myRoles = community?.self?.roles || [];
    const sig = `${room.members.size}:${roles.map((r) => r.name).join(',')}`;
    return { user, role, myRoles, sig };
  }

  #rowsFromState() {
    const { room, chat } = this;
    const out = [];
    let last = null; // {userId, at, day}
    let lastDay = null;
    const push = (kind, item, key) => {
      const at = new Date(item.createdAt);
      const day = dayKey(at);
      if (lastDay !== day) {
        out.push({ key: `d:${day}`, sig: day, build: () => dayDivider(at) });
        lastDay = day;
        last = null;
      }
      const grouped = Boolean(last && last.userId === item.userId && at - last.at < GROUP_MS);
      last = { userId: item.userId, at, day };
      if (kind === 'msg' && item.type === 'system') {
        last = null; // a notice breaks a run of messages from one author
        const canDelete = chat.canDelete(room, item);
        out.push({
          key: `m:${item.id}`, sig: `s|${item.content}|${item.deleted ? 1 : 0}|${canDelete}`,
          build: () => systemRow(item, { canDelete }),
        });
      } else if (kind === 'msg' && chat.store.blocked.has(item.userId) && !this.#revealed.has(item.id)) {
        // Discord-style: a blocked person's message is collapsed to a line the user may open.
        last = null;
        out.push({
          key: `m:${item.id}`, sig: 'blocked',
          build: () => blockedRow(item, () => {
            this.#revealed.add(item.id);
            this.schedule('reveal', item.id);
          }),
        });
      } else if (kind === 'msg') {
        const me = chat.me.id;
        const opts = {
          grouped,
          canDelete: chat.canDelete(room, item),
          canEdit: chat.canEdit(item),
          editing: this.#editing === item.id,
          picker: this.#picker === item.id,
          parentLoaded: Boolean(item.replyTo && room.messages.has(item.replyTo.id)),
          meId: me,
          attachment: this.attachment,
          names: this.#names(),
        };
        const reactions = (item.reactions || [])
          .map((r) => `${r.emoji}${r.count}${(r.userIds || []).includes(me) ? '*' : ''}`).join(',');
        const sig = [opts.names.sig, grouped, item.deleted ? 1 : 0, opts.canDelete, opts.canEdit, opts.editing, opts.picker,
          opts.parentLoaded, item.content, item.editedAt || '', reactions, item.replyTo?.id || '',
          item.fileId || ''].join('|');
        out.push({ key: `m:${item.id}`, sig, build: () => messageRow(item, { ...opts, draft: this.#draft }) });
      } else {
        const sig = `${grouped}|${item.state}|${item.error || ''}|${item.replyTo?.id || ''}|${item.fileId || ''}`;
        out.push({ key: `p:${item.nonce}`, sig, build: () => pendingRow(item, { grouped }) });
      }
    };
    for (const id of room.ids) push('msg', room.messages.get(id), id);
    const pending = [...room.pending.values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
    for (const p of pending) push('pending', p, p.nonce);
    return out;
  }

  /** Up/Down move focus between messages; keys act on the focused one. */
  #onKey(e) {
    if (e.target.dataset?.editor) {
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        this.cancelEdit();
      } else if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.saveEdit();
      }
      return;
    }
    if (e.target.closest?.('.emoji-picker')) {
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        this.closePicker({ focus: true });
      } else if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
        const buttons = [...e.target.closest('.emoji-picker').querySelectorAll('button')];
        const i = buttons.indexOf(e.target);
        buttons[(i + (e.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length]?.focus();
        e.preventDefault();
      }
      return;
    }
    if (e.target.closest?.('button, a, textarea, input, audio')) return;
    const rows = [...this.list.querySelectorAll('li.msg, li.sysmsg[tabindex]')];
    if (!rows.length) return;
    const current = e.target.closest?.('li.msg, li.sysmsg[tabindex]');
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
    } else if (current && !e.ctrlKey && !e.metaKey && !e.altKey) {
      const action = { Delete: 'delete', Backspace: 'delete', e: 'edit', E: 'edit', r: 'reply', R: 'reply', '+': 'react' }[e.key];
      const button = action && current.querySelector(`button[data-action="${action}"]`);
      if (button) {
        e.preventDefault();
        button.click();
      }
    }
  }

  async #askDelete(id) {
    const ok = await confirmDialog({
      title: 'Delete message',
      message: 'Delete this message for everyone? This cannot be undone.',
      confirmLabel: 'Delete', danger: true,
    });
    if (!ok) return;
    try {
      await this.chat.deleteMessage(this.room.id, id);
    } catch (err) {
      this.shell.toast(`Could not delete the message: ${err.message}`);
    }
  }

  async #onClick(e) {
    const button = e.target.closest('button[data-action]');
    if (!button) return;
    const row = button.closest('li');
    const { room, chat } = this;
    const id = row?.dataset.messageId;
    switch (button.dataset.action) {
      case 'delete':
        await this.#askDelete(id);
        break;
      case 'edit':
        this.startEdit(id);
        break;
      case 'edit-cancel':
        this.cancelEdit();
        break;
      case 'edit-save':
        this.saveEdit();
        break;
      case 'reply': {
        const m = room.messages.get(id);
        if (m) this.onReply(m);
        break;
      }
      case 'react':
        this.togglePicker(id);
        break;
      case 'pick':
      case 'toggle-reaction': {
        const emoji = button.dataset.emoji;
        if (button.dataset.action === 'pick') this.closePicker({ focus: true });
        try {
          await chat.toggleReaction(room.id, id, emoji);
        } catch (err) {
          this.shell.toast(`Could not react: ${err.message}`);
        }
        break;
      }
      case 'jump':
        this.reveal(button.dataset.parentId);
        break;
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

function autosize(box) {
  box.style.height = 'auto';
  box.style.height = `${Math.min(box.scrollHeight, 240)}px`;
}

/** A collapsed message of a blocked person, with a button that shows it. */
function blockedRow(m, onShow) {
  return h('li', { class: 'msg blocked', dataset: { messageId: m.id, blocked: 'true' }, tabindex: '-1' },
    h('div', { class: 'msg-gutter' }),
    h('div', { class: 'msg-main' },
      h('p', { class: 'msg-blocked' }, 'Blocked message — ',
        h('button', { class: 'link-btn', type: 'button', text: 'Show', onclick: onShow }))));
}
