// The composer's mention picker: typing "@" and the start of a name lists the room's members
// who match (arrows move, Enter or Tab picks, Escape closes); a pick writes "@name". On send,
// every "@name" of a member of the room becomes "<@id>" (the stored form: PROTOCOL.md,
// "Mentions and notifications"), so a rename later does not break it.

import { avatar, h } from '../dom.js';

const MAX_SHOWN = 8;
/** "@" and what follows it up to the caret, at the start or after a space. */
const QUERY_RE = /(^|\s)@([A-Za-z0-9_]{0,32})$/;
/** "@name" as a word of its own. */
const NAME_RE = /(^|[\s(])@([A-Za-z0-9_]{1,32})(?=$|[\s.,;:!?)])/g;

export function mentionPicker({ input, room, chat }) {
  const el = h('ul', { class: 'mention-picker', id: 'mention-picker', role: 'listbox', 'aria-label': 'Mention someone', hidden: true });
  let matches = [];
  let active = 0;
  let start = -1;

  const members = () => [...room.members.values()].filter((m) => m.userId !== chat.me.id);

  function close() {
    el.hidden = true;
    matches = [];
    input.removeAttribute('aria-activedescendant');
    input.setAttribute('aria-expanded', 'false');
  }

  function render() {
    el.replaceChildren(...matches.map((m, i) => h('li', {
      id: `mention-option-${m.userId}`, role: 'option', class: 'mention-option', 'aria-selected': String(i === active),
      dataset: { userId: m.userId },
      onmousedown: (e) => { e.preventDefault(); pick(m); },
    }, avatar(m.userId, m.username, 'avatar-xs'), h('span', { text: m.username }))));
    el.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    input.setAttribute('aria-activedescendant', `mention-option-${matches[active].userId}`);
  }

  /** After each keystroke: what is typed after "@", if anything. */
  function refresh() {
    const caret = input.selectionStart ?? input.value.length;
    const found = QUERY_RE.exec(input.value.slice(0, caret));
    if (!found) return close();
    if (!room.membersLoaded) chat.loadMembers(room).then(() => refresh()).catch(() => {});
    const query = found[2].toLowerCase();
    start = caret - found[2].length - 1;
    matches = members().filter((m) => m.username.toLowerCase().startsWith(query))
      .sort((a, b) => a.username.localeCompare(b.username)).slice(0, MAX_SHOWN);
    active = 0;
    if (!matches.length) return close();
    return render();
  }

  function pick(member) {
    const caret = input.selectionStart ?? input.value.length;
    const text = `@${member.username} `;
    input.value = input.value.slice(0, start) + text + input.value.slice(caret);
    const at = start + text.length;
    input.setSelectionRange(at, at);
    close();
    input.focus();
    input.dispatchEvent(new Event('input'));
  }

  /** Handles the picker's keys; true when the key was the picker's. */
  function onKeydown(e) {
    if (el.hidden || !matches.length) return false;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      active = (active + (e.key === 'ArrowDown' ? 1 : matches.length - 1)) % matches.length;
      render();
    } else if ((e.key === 'Enter' || e.key === 'Tab') && !e.shiftKey) {
      pick(matches[active]);
    } else if (e.key === 'Escape') {
      close();
    } else return false;
    e.preventDefault();
    return true;
  }

  const encode = (text) => encodeMentions(text, room, chat.me);

  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-controls', 'mention-picker');
  input.setAttribute('aria-expanded', 'false');
  input.addEventListener('blur', () => setTimeout(close, 100));
  return { el, refresh, onKeydown, encode, close };
}

/** The text to send: each "@name" of a member of `room` (or `me`) → "<@id>". */
export function encodeMentions(text, room, me) {
  const byName = new Map([...room.members.values()].map((m) => [m.username.toLowerCase(), m.userId]));
  byName.set(me.username.toLowerCase(), me.id);
  return text.replace(NAME_RE, (whole, lead, name) => {
    const id = byName.get(name.toLowerCase());
    return id ? `${lead}<@${id}>` : whole;
  });
}
