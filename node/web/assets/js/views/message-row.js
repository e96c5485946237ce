// The rows of the message list: a message (with its reply preview, "(edited)" mark, reaction
// chips, hover toolbar and, while editing, the inline editor), an unsent message, a system
// notice and a day divider. Everything is built from text (never HTML).
//
// Buttons carry `data-action` (and `data-emoji` / `data-parent-id`); the list handles their
// clicks in one delegated listener (views/messages.js). Attachments (file and voice_note
// messages) are built by views/attachments.js.

import { avatar, formatDay, formatFull, formatTime, h, icon } from '../dom.js';
import { pendingAttachment } from './attachments.js';

/** The quick reactions offered by the picker. */
export const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🔥', '👀'];
const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

export function dayKey(d) { return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`; }

export function dayDivider(date) {
  return h('li', { class: 'day-divider', role: 'separator', 'aria-label': formatDay(date) },
    h('span', { text: formatDay(date) }));
}

function header(item, at) {
  return h('div', { class: 'msg-head' },
    h('span', { class: 'msg-author', text: item.username }),
    h('time', { class: 'msg-time', datetime: at.toISOString(), title: formatFull(at), text: formatTime(at) }));
}

function gutter(item, grouped, at) {
  return grouped
    ? h('time', { class: 'msg-gutter-time', datetime: at.toISOString(), 'aria-hidden': 'true', text: formatTime(at) })
    : avatar(item.userId, item.username);
}

/** "↪ @alice the first words of what they said" above a reply. */
function replyPreview(replyTo, parentLoaded) {
  if (!replyTo) return null;
  const snippet = replyTo.snippet || '';
  return h('button', {
    class: 'msg-reply', type: 'button', 'data-action': 'jump', 'data-parent-id': replyTo.id,
    disabled: !parentLoaded, 'aria-label': `In reply to ${replyTo.username}: ${snippet || 'a message'}`,
    title: parentLoaded ? 'Show the message this replies to' : null,
  },
  icon('reply', 'msg-reply-icon'),
  h('span', { class: 'msg-reply-author', text: `@${replyTo.username}` }),
  h('span', { class: 'msg-reply-snippet', text: snippet || 'Original message' }));
}

/** The message's text (an attachment's caption, if any) and its attachment (`attachment(m)`
 *  builds it), or the tombstone. */
function content(item, attachment, names) {
  if (item.deleted) return h('p', { class: 'msg-content msg-deleted' }, 'Message deleted');
  const text = h('p', { class: 'msg-content' }, ...mentionify(item.content || '', names));
  if (item.fileId && attachment) return [item.content ? text : null, attachment(item)];
  return text;
}

/** The inline editor: Enter saves, Shift+Enter is a new line, Escape cancels. */
function editor(m, draft, names) {
  const id = `edit-${m.id}`;
  const box = h('textarea', {
    id, class: 'msg-editor', rows: '1', maxlength: '4000', 'aria-label': 'Edit message',
    'aria-describedby': `${id}-help`, 'data-editor': m.id,
  });
  box.value = draft ?? showMentions(m.content, names);
  return h('div', { class: 'msg-edit' },
    box,
    h('p', { class: 'msg-edit-help', id: `${id}-help` },
      'Escape to ',
      h('button', { class: 'link-btn', type: 'button', 'data-action': 'edit-cancel' }, 'cancel'),
      ' · Enter to ',
      h('button', { class: 'link-btn', type: 'button', 'data-action': 'edit-save' }, 'save')));
}

/** Reaction chips: count, highlighted (aria-pressed) when this user reacted; a click toggles. */
function reactions(m, meId) {
  if (m.deleted || !m.reactions?.length) return [];
  return m.reactions.filter((r) => r.count > 0).map((r) => {
    const mine = (r.userIds || []).includes(meId);
    return h('button', {
      class: `reaction${mine ? ' mine' : ''}`, type: 'button', 'data-action': 'toggle-reaction',
      'data-emoji': r.emoji, 'aria-pressed': String(mine),
      'aria-label': `${r.emoji} ${r.count} ${r.count === 1 ? 'reaction' : 'reactions'}${mine ? ', including yours' : ''}`,
      title: mine ? 'Remove your reaction' : 'Add this reaction',
    }, h('span', { class: 'reaction-emoji', 'aria-hidden': 'true', text: r.emoji }),
    h('span', { class: 'reaction-count', 'aria-hidden': 'true', text: String(r.count) }));
  });
}

/** The emoji picker under a message (a small group of buttons). */
export function emojiPicker(m) {
  return h('div', { class: 'emoji-picker', role: 'group', 'aria-label': `Add a reaction to the message from ${m.username}` },
    ...QUICK_EMOJI.map((e) => h('button', {
      class: 'emoji-btn', type: 'button', 'data-action': 'pick', 'data-emoji': e, 'aria-label': `React with ${e}`,
    }, e)));
}

/**
 * A message row. `opts`: grouped (continues the previous author's run), canDelete, canEdit,
 * editing (with draft), picker (the emoji picker is open), meId, parentLoaded, attachment
 * (builds the attachment of a file or voice_note message).
 */
export function messageRow(m, opts) {
  const at = new Date(m.createdAt);
  const { grouped, canDelete, canEdit, editing, draft, picker, meId, parentLoaded, attachment, names } = opts;
  const extras = [];
  if (m.editedAt && !m.deleted && !editing) extras.push(h('span', { class: 'msg-edited', text: '(edited)' }));
  extras.push(...reactions(m, meId));
  const actions = [];
  if (!m.deleted) {
    actions.push(
      h('button', {
        class: 'icon-btn', type: 'button', 'data-action': 'react', tabindex: '-1',
        'aria-label': `Add reaction to message from ${m.username}`, title: 'Add reaction', 'aria-keyshortcuts': '+',
      }, icon('smile')),
      h('button', {
        class: 'icon-btn', type: 'button', 'data-action': 'reply', tabindex: '-1',
        'aria-label': `Reply to ${m.username}`, title: 'Reply', 'aria-keyshortcuts': 'R',
      }, icon('reply')));
  }
  if (canEdit && !editing) {
    actions.push(h('button', {
      class: 'icon-btn', type: 'button', 'data-action': 'edit', tabindex: '-1',
      'aria-label': 'Edit message', title: 'Edit', 'aria-keyshortcuts': 'E',
    }, icon('edit')));
  }
  if (canDelete) {
    actions.push(h('button', {
      class: 'icon-btn icon-danger', type: 'button', 'data-action': 'delete', tabindex: '-1',
      'aria-label': `Delete message from ${m.username}`, title: 'Delete', 'aria-keyshortcuts': 'Delete',
    }, icon('trash')));
  }
  const mentioned = !m.deleted && mentionsMe(m, meId, names);
  return h('li', {
    class: `msg${grouped && !m.replyTo ? ' grouped' : ''}${m.deleted ? ' deleted' : ''}${editing ? ' editing' : ''}${mentioned ? ' mentioned' : ''}`,
    dataset: { messageId: m.id, author: m.username }, tabindex: '-1',
  },
  h('div', { class: 'msg-gutter' }, gutter(m, grouped && !m.replyTo, at)),
  h('div', { class: 'msg-main' },
    replyPreview(m.replyTo, parentLoaded),
    grouped && !m.replyTo ? h('span', { class: 'sr-only', text: `${m.username}, ${formatTime(at)}: ` }) : header(m, at),
    editing ? editor(m, draft, names) : content(m, attachment, names),
    extras.length ? h('div', { class: 'msg-extras' }, ...extras) : null,
    picker ? emojiPicker(m) : null),
  actions.length ? h('div', { class: 'msg-actions', role: 'toolbar', 'aria-label': 'Message actions' }, ...actions) : null);
}

export function pendingRow(p, { grouped }) {
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
  const g = grouped && !p.replyTo;
  return h('li', {
    class: `msg pending${g ? ' grouped' : ''} ${p.state}`,
    dataset: { nonce: p.nonce, author: p.username },
  },
  h('div', { class: 'msg-gutter' }, gutter(p, g, at)),
  h('div', { class: 'msg-main' },
    replyPreview(p.replyTo, false),
    g ? h('span', { class: 'sr-only', text: `${p.username}, ${formatTime(at)}: ` }) : header(p, at),
    p.fileId ? [p.content ? content(p) : null, pendingAttachment(p)] : content(p),
    status));
}

/** A server notice (joins, leaves, stage changes, calls): a quiet line, not a bubble. Room
 *  admins may delete notices too (`canDelete`: a delete button, and the row takes focus from
 *  the arrow keys like a message). */
export function systemRow(m, { canDelete = false } = {}) {
  const at = new Date(m.createdAt);
  return h('li', {
    class: `sysmsg${m.deleted ? ' deleted' : ''}`, dataset: { messageId: m.id },
    tabindex: canDelete ? '-1' : null,
  },
  h('span', { class: `sysmsg-text${m.deleted ? ' msg-deleted' : ''}`, text: m.deleted ? 'Notice deleted' : m.content }),
  h('time', { datetime: m.createdAt, text: ` · ${formatTime(at)}` }),
  canDelete ? h('button', {
    class: 'icon-btn icon-danger sysmsg-delete', type: 'button', 'data-action': 'delete', tabindex: '-1',
    'aria-label': `Delete notice: ${m.content}`, title: 'Delete notice', 'aria-keyshortcuts': 'Delete',
  }, icon('trash')) : null);
}

/** Text with http(s) links made clickable (as text nodes and anchors, never HTML). */
/** `<@id>` (a user) or `<@&id>` (a role), as stored (PROTOCOL.md, "Mentions"). */
const MENTION_RE = /<@(&?)(\d{1,19})>/g;

/** Whether the message names this user: by id, by a role they hold, or @everyone/@here. */
export function mentionsMe(m, meId, names) {
  if (!meId || m.userId === meId) return false;
  if (m.mentionsEveryone || (m.mentions || []).includes(meId)) return true;
  return (m.mentionRoles || []).some((r) => names?.myRoles?.includes(r));
}

/** The text with `<@id>` written as `@name` (for the editor; sending turns it back). A
 *  user whose name is unknown, and roles, stay as they are stored. */
export function showMentions(text, names) {
  return (text || '').replace(MENTION_RE, (whole, role, id) => {
    const name = role ? null : names?.user?.(id);
    return name ? `@${name}` : whole;
  });
}

/** The text with each mention shown as a styled `@name` (names.user(id) / names.role(id)),
 *  and links. */
function mentionify(text, names) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(MENTION_RE)) {
    if (match.index > last) parts.push(...linkify(text.slice(last, match.index)));
    const role = match[1] === '&';
    const id = match[2];
    const name = role ? names?.role?.(id) : names?.user?.(id);
    parts.push(h('span', {
      class: `mention${role ? ' mention-role' : ''}`, dataset: { mention: id },
      text: `@${name || (role ? 'role' : 'unknown')}`,
    }));
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push(...linkify(text.slice(last)));
  return parts;
}

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
