// The room view: header (name, description, invite code, members toggle, admin settings,
// leave; a call button in a DM), the voice or stage panel of voice rooms, the message list,
// the typing line, the "replying to" bar, the composer, and the member panel.
//
// Keyboard: Enter sends, Shift+Enter starts a new line, Escape drops a reply being written;
// the composer takes focus when the room opens. Typing sends typing:start (throttled by
// chat.js) and typing:stop on send, blur, or an emptied box.
//
// Attachments: the paperclip button (a file picker), pasting files into the composer, or
// dropping them anywhere on the chat uploads them (the tray above the composer shows progress
// and errors) and sends each as a file message. The microphone button records a voice note
// (MediaRecorder, audio only): the composer turns into a recording bar with the time, Cancel
// (or Escape) and Send.
//
// A community channel (room.communityId) is the same view with views/community-channel.js's
// additions: its header buttons, the community's member list, and a composer disabled (with
// the reason) when this user may not send there.

import { announce, formatDuration, h, icon } from '../dom.js';
import { canRecord, MAX_RECORDING_MS, recordingError, VoiceRecorder } from '../recorder.js';
import { renderUploads } from './attachments.js';
import { channelExtras } from './community-channel.js';
import { confirmDialog, modal } from './dialog.js';
import { renderMembers } from './members.js';
import { mentionPicker } from './mention-picker.js';
import { MessageList } from './messages.js';
import { notifyMenu } from './notify-menu.js';
import { roomFormDialog } from './room-form.js';
import { searchBox, searchJumps } from './search.js';
import { stagePanel } from './stage.js';
import { voicePanel } from './voice.js';

/** The header icon of each kind of room. */
export const KIND_ICON = { text: 'hash', voice: 'volume', stage: 'stage', dm: 'at' };

const MAX_LEN = 4000;
const MEMBERS_KEY = 'vf.membersOpen';

export function roomView({ roomId, store, chat, api, router, shell, voice, calls, communities = null }) {
  const room = store.room(roomId);
  if (!room) return previewView({ roomId, chat, api, router, shell });
  const extras = room.communityId && communities ? channelExtras({
    room, communities, api, store, me: chat.me, toast: (t) => shell.toast(t),
    actions: shell.communityActions.forCommunity(room.communityId),
  }) : null;

  const unsub = [];
  const isDm = room.kind === 'dm';
  const label = () => (isDm ? `@${room.displayName(chat.me)}` : `#${room.name}`);
  const memberOpts = {
    store,
    onMessage: async (userId) => {
      try {
        const id = await chat.openDm(userId);
        router.go(`/rooms/${id}`);
      } catch (err) {
        shell.toast(`Could not open the conversation: ${err.message}`);
      }
    },
    onBlock: async (userId, blocked) => {
      try {
        await chat.setBlocked(userId, blocked);
      } catch (err) {
        shell.toast(`Could not ${blocked ? 'block' : 'unblock'}: ${err.message}`);
      }
    },
  };
  /** The message being answered (null: none). */
  let replyTo = null;
  const title = h('h1', { class: 'room-title', id: 'room-title' });
  const desc = h('p', { class: 'room-desc' });
  const actions = h('div', { class: 'head-actions' });
  const membersPanel = h('div', { class: 'members-body' });
  const membersOpenByDefault = localStorage.getItem(MEMBERS_KEY) !== 'false';
  const membersToggle = h('button', {
    class: 'icon-btn', type: 'button', 'aria-controls': 'members-panel',
    'aria-label': 'Show members', title: 'Members',
    onclick: () => setMembersOpen(el.dataset.members !== 'open', true),
  }, icon('users'));
  const aside = h('aside', { class: 'members-panel', id: 'members-panel', 'aria-label': 'Members' },
    h('div', { class: 'members-head' },
      h('h2', {}, 'Members'),
      h('button', {
        class: 'icon-btn members-close', type: 'button', 'aria-label': 'Close members',
        onclick: () => { setMembersOpen(false, true); membersToggle.focus(); },
      }, icon('close'))),
    membersPanel);
  if (extras) {
    membersPanel.replaceChildren(extras.membersEl);
    aside.classList.add('members-community');
  }

  const jump = h('button', {
    class: 'jump-latest', type: 'button', hidden: true,
    onclick: () => { list.scrollToBottom(); jump.hidden = true; },
  }, 'New messages', icon('arrowDown'));
  const list = new MessageList({
    room, chat, shell,
    onNewBelow: (n) => {
      if (n === 0) jump.hidden = true;
      else jump.hidden = false;
    },
    onReply: (m) => setReply(m),
  });
  const replyBar = h('div', { class: 'reply-bar', hidden: true, role: 'status' });
  let panel = null;
  if (room.kind === 'voice') panel = voicePanel({ room, store, chat, voice, shell });
  else if (room.kind === 'stage') panel = stagePanel({ room, store, chat, voice, shell });
  if (panel) unsub.push(() => panel.destroy());

  const input = h('textarea', {
    id: 'composer', class: 'composer-input', rows: '1', maxlength: String(MAX_LEN),
    placeholder: `Message ${label()}`, 'aria-describedby': 'composer-help', autocomplete: 'off',
  });
  const picker = mentionPicker({ input, room, chat });
  const composerLabel = h('label', { for: 'composer', class: 'sr-only' }, `Message ${label()}`);
  const counter = h('span', { class: 'composer-count', 'aria-live': 'polite' });
  const fileInput = h('input', {
    type: 'file', multiple: true, hidden: true, tabindex: '-1', 'aria-hidden': 'true', class: 'file-input',
  });
  const attachBtn = h('button', {
    class: 'icon-btn attach-btn', type: 'button', 'aria-label': 'Attach a file', title: 'Attach a file',
    onclick: () => fileInput.click(),
  }, icon('paperclip'));
  const recordBtn = canRecord() ? h('button', {
    class: 'icon-btn record-btn', type: 'button', 'aria-label': 'Record a voice note', title: 'Record a voice note',
    onclick: () => startRecording(),
  }, icon('mic')) : null;
  const form = h('form', { class: 'composer', 'aria-label': 'Send a message' },
    composerLabel,
    attachBtn,
    fileInput,
    input,
    counter,
    recordBtn,
    h('button', { class: 'icon-btn send-btn', type: 'submit', 'aria-label': 'Send message', title: 'Send' },
      icon('send')),
    h('p', { id: 'composer-help', class: 'sr-only' },
      'Enter sends, Shift+Enter adds a new line, Escape cancels a reply. Paste or drop files to attach them.'));
  const recTime = h('span', { class: 'recorder-time', role: 'timer', 'aria-label': 'Recording time' }, '0:00');
  const recorderBar = h('div', {
    class: 'recorder', role: 'group', 'aria-label': 'Recording a voice note', hidden: true,
  },
  h('span', { class: 'recorder-dot', 'aria-hidden': 'true' }),
  h('span', { class: 'recorder-label' }, 'Recording'),
  recTime,
  h('span', { class: 'recorder-limit', text: `max ${formatDuration(MAX_RECORDING_MS)}` }),
  h('button', {
    class: 'btn btn-small btn-ghost', type: 'button', onclick: () => cancelRecording(),
    'aria-label': 'Cancel the voice note', 'aria-keyshortcuts': 'Escape',
  }, 'Cancel'),
  h('button', {
    class: 'btn btn-small btn-primary recorder-send', type: 'button', onclick: () => finishRecording(),
    'aria-label': 'Send voice note',
  }, icon('send'), 'Send', h('span', { class: 'recorder-send-more' }, ' voice note')));
  const tray = h('ul', { class: 'upload-tray', 'aria-label': 'Uploads', hidden: true });
  const typingLine = h('div', { class: 'typing-line' });
  const composerNote = h('p', { class: 'composer-note', role: 'status', hidden: true });

  const chatArea = h('div', { class: 'room-chat', 'data-drop-label': `Drop files to send them to ${label()}` },
    panel?.el, list.el, jump,
    h('div', { class: 'composer-wrap' }, tray, replyBar, composerNote, picker.el, form, recorderBar, typingLine));
  const search = searchBox({
    api, store, router, shell,
    pathOf: (id) => {
      const c = store.room(id)?.communityId;
      return c ? `/c/${c}/${id}` : `/rooms/${id}`;
    },
  });
  const el = h('section', { class: `view room kind-${room.kind}`, 'aria-labelledby': 'room-title' },
    h('header', { class: 'view-head' },
      shell.menuButton(),
      icon(KIND_ICON[room.kind] || 'hash', 'head-icon'),
      h('div', { class: 'room-heading' }, title, desc),
      search.form,
      actions),
    search.panel,
    h('div', { class: 'room-body' }, chatArea, aside));

  // A search result of this room, chosen here or in another room's header.
  const jumps = searchJumps({ room, store, chat, list, shell });
  unsub.push(() => jumps.destroy());

  function setReply(m) {
    replyTo = m;
    if (!m) {
      replyBar.hidden = true;
      replyBar.replaceChildren();
      return;
    }
    replyBar.hidden = false;
    replyBar.replaceChildren(
      icon('reply'),
      h('span', { class: 'reply-bar-text' }, 'Replying to ', h('strong', { text: m.username }),
        h('span', { class: 'reply-bar-snippet', text: ` — ${(m.content || (m.fileId ? 'an attachment' : '')).slice(0, 80)}` })),
      h('button', {
        class: 'icon-btn', type: 'button', 'aria-label': 'Cancel reply', title: 'Cancel reply',
        onclick: () => { setReply(null); input.focus(); },
      }, icon('close')));
    input.focus();
  }

  function setMembersOpen(open, remember) {
    el.dataset.members = open ? 'open' : 'closed';
    membersToggle.setAttribute('aria-expanded', String(open));
    membersToggle.setAttribute('aria-label', open ? 'Hide members' : 'Show members');
    if (remember && window.matchMedia('(min-width: 1100px)').matches) {
      localStorage.setItem(MEMBERS_KEY, String(open));
    }
    if (open && remember) chat.loadMembers(room).catch(() => {});
    if (open && remember && !window.matchMedia('(min-width: 1100px)').matches) {
      aside.querySelector('.members-close')?.focus();
    }
  }
  // Wide screens show the panel (unless closed before); narrower ones open it on demand.
  setMembersOpen(membersOpenByDefault && window.matchMedia('(min-width: 1100px)').matches, false);

  function renderHead() {
    const meta = room.meta;
    title.textContent = isDm ? room.displayName(chat.me) : room.name;
    desc.textContent = isDm ? 'Direct message' : meta?.description || '';
    desc.hidden = !desc.textContent;
    input.placeholder = `Message ${label()}`;
    composerLabel.textContent = `Message ${label()}`;
    chatArea.dataset.dropLabel = `Drop files to send them to ${label()}`;
    document.title = `${label()} · VoiceFlow`;
    const admin = room.roleOf(chat.me.id) === 'admin';
    const bell = notifyMenu({ room, api, toast: (t) => shell.toast(t), refresh: () => shell.social.syncRooms().then(renderHead) });
    const buttons = [bell];
    if (extras) {
      renderComposerState();
      actions.replaceChildren(...extras.buttons(), bell, membersToggle);
      return;
    }
    if (isDm) {
      const c = store.call;
      const busy = Boolean(c);
      buttons.push(h('button', {
        class: 'icon-btn call-btn', type: 'button', 'aria-label': `Call ${room.displayName(chat.me)}`,
        title: busy ? 'Already in a call' : 'Start a voice call', disabled: busy,
        onclick: async () => {
          try {
            await calls.call(room.id);
          } catch (err) {
            shell.toast(`Could not call: ${err.message}`);
          }
        },
      }, icon('phone')));
      buttons.push(membersToggle);
      actions.replaceChildren(...buttons);
      return;
    }
    if (meta?.joinCode) {
      buttons.push(h('button', {
        class: 'btn btn-small btn-ghost invite-btn', type: 'button',
        'aria-label': `Invite code ${meta.joinCode}. Copy it`, title: 'Copy the invite code',
        onclick: () => copyCode(meta.joinCode),
      }, icon('copy'), h('span', { class: 'invite-label', text: 'Invite' }),
      h('code', { class: 'invite-code', text: meta.joinCode })));
    }
    buttons.push(membersToggle);
    if (admin && meta) {
      buttons.push(h('button', {
        class: 'icon-btn', type: 'button', 'aria-label': 'Room settings', title: 'Room settings',
        onclick: editRoom,
      }, icon('settings')));
    }
    buttons.push(h('button', {
      class: 'icon-btn', type: 'button', 'aria-label': 'Leave room', title: 'Leave room', onclick: leave,
    }, icon('leave')));
    actions.replaceChildren(...buttons);
  }

  /** A channel this user may not write in: the composer is disabled and says why. */
  function renderComposerState() {
    const { disabled, reason } = extras.composerState();
    form.dataset.disabled = String(disabled);
    for (const control of form.querySelectorAll('textarea, button')) control.disabled = disabled;
    if (!disabled && !extras.canAttach()) attachBtn.disabled = true;
    composerNote.hidden = !disabled;
    composerNote.textContent = reason;
    input.placeholder = disabled ? reason : `Message ${label()}`;
  }

  async function copyCode(code) {
    try {
      await navigator.clipboard.writeText(code);
      shell.toast(`Invite code ${code} copied.`);
    } catch {
      // No clipboard (e.g. plain http on another host): show it to copy by hand.
      await modal({ title: 'Invite code', build: () => h('div', { class: 'dialog-body' },
        h('p', {}, 'Share this code; people join with it from “Browse rooms”.'),
        h('input', { class: 'code-display', readonly: true, value: code, 'aria-label': 'Invite code' })) });
    }
  }

  async function editRoom() {
    const meta = await roomFormDialog({
      title: 'Room settings', submitLabel: 'Save changes', room: room.meta,
      save: (fields) => chat.updateRoom(room.id, fields),
    });
    if (meta) shell.toast('Room settings saved.');
  }

  async function deleteRoom() {
    const ok = await confirmDialog({ title: 'Delete room', danger: true, confirmLabel: 'Delete room',
      message: `Delete #${room.name} and all its messages for everyone? This cannot be undone.` });
    if (!ok) return;
    try {
      await chat.deleteRoom(room.id);
      router.go('/rooms');
    } catch (err) {
      shell.toast(`Could not delete the room: ${err.message}`);
    }
  }

  async function leave() {
    const admin = room.roleOf(chat.me.id) === 'admin';
    if (admin) {
      const choice = await modal({
        title: `Leave #${room.name}`,
        build: (close) => h('div', { class: 'dialog-body' },
          h('p', {}, 'You are an admin of this room. You can leave it, or delete it for everyone.'),
          h('div', { class: 'dialog-actions' },
            h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => close(null) }, 'Cancel'),
            h('button', { class: 'btn btn-danger', type: 'button', onclick: () => close('delete') }, 'Delete room'),
            h('button', { class: 'btn btn-primary', type: 'button', onclick: () => close('leave') }, 'Leave'))),
      });
      if (choice === 'delete') return deleteRoom();
      if (choice !== 'leave') return undefined;
    } else {
      const ok = await confirmDialog({ title: `Leave #${room.name}`, confirmLabel: 'Leave room',
        message: room.meta?.settings?.isPublic === false
          ? 'This room is private: you will need its invite code to come back.'
          : 'You can join again from the room browser.' });
      if (!ok) return undefined;
    }
    try {
      await chat.leaveRoom(room.id);
      router.go('/rooms');
    } catch (err) {
      shell.toast(`Could not leave the room: ${err.message}`);
    }
    return undefined;
  }

  function renderTyping() {
    const names = chat.typingNames(room);
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = 'Several people are typing…';
    typingLine.replaceChildren(...(text ? [h('span', { class: 'typing-dots', 'aria-hidden': 'true' },
      h('i'), h('i'), h('i')), h('span', { text })] : []));
    typingLine.dataset.active = String(Boolean(text));
  }

  // ---- composer ----
  function autosize() {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
  }
  function send() {
    const text = input.value;
    if (!text.trim()) return;
    chat.send(room.id, picker.encode(text), { replyTo });
    setReply(null);
    input.value = '';
    autosize();
    updateCounter();
  }
  function updateCounter() {
    const left = MAX_LEN - input.value.length;
    counter.textContent = left < 500 ? String(left) : '';
  }
  input.addEventListener('keydown', (e) => {
    if (picker.onKeydown(e)) return;
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    } else if (e.key === 'Escape' && replyTo) {
      e.preventDefault();
      setReply(null);
    } else if (e.key === 'ArrowUp' && !input.value) {
      // Up in an empty box edits your last message (as in Discord).
      const mine = [...room.ids].reverse().map((id) => room.messages.get(id))
        .find((m) => m && chat.canEdit(m));
      if (mine) {
        e.preventDefault();
        list.startEdit(mine.id);
      }
    }
  });
  input.addEventListener('input', () => {
    autosize();
    updateCounter();
    picker.refresh();
    if (input.value.trim()) chat.typing(room.id);
    else chat.stopTyping(room.id);
  });
  input.addEventListener('blur', () => chat.stopTyping(room.id));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    send();
    input.focus();
  });

  // ---- attachments ----
  function attach(files) {
    const list_ = [...files].filter((f) => f instanceof File);
    if (!list_.length) return;
    chat.uploads.attach(room.id, list_, { replyTo });
    setReply(null);
    announce(list_.length === 1 ? `Uploading ${list_[0].name}` : `Uploading ${list_.length} files`);
  }
  fileInput.addEventListener('change', () => {
    attach(fileInput.files);
    fileInput.value = ''; // the same file can be picked again
    input.focus();
  });
  input.addEventListener('paste', (e) => {
    const files = e.clipboardData?.files;
    if (!files?.length) return;
    e.preventDefault();
    attach(files);
  });
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  chatArea.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    chatArea.dataset.drop = 'on';
  });
  chatArea.addEventListener('dragleave', (e) => {
    if (!chatArea.contains(e.relatedTarget)) delete chatArea.dataset.drop;
  });
  chatArea.addEventListener('drop', (e) => {
    delete chatArea.dataset.drop;
    if (!hasFiles(e)) return;
    e.preventDefault();
    attach(e.dataTransfer.files);
    input.focus();
  });
  tray.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-upload-action]');
    if (!b) return;
    const id = b.dataset.uploadId;
    if (b.dataset.uploadAction === 'retry') chat.uploads.retry(room.id, id);
    else chat.uploads.drop(room.id, id);
    input.focus();
  });

  // ---- voice notes ----
  let recorder = null;
  function showRecorder(on) {
    recorderBar.hidden = !on;
    form.hidden = on;
    if (on) recorderBar.querySelector('.recorder-send').focus();
  }
  async function startRecording() {
    if (recorder) return;
    const r = new VoiceRecorder();
    recorder = r;
    if (recordBtn) recordBtn.disabled = true;
    try {
      await r.start();
    } catch (err) {
      if (recorder === r) recorder = null;
      shell.toast(recordingError(err));
      return;
    } finally {
      if (recordBtn) recordBtn.disabled = false;
    }
    if (recorder !== r) { // cancelled or left meanwhile
      r.cancel();
      return;
    }
    recTime.textContent = '0:00';
    r.addEventListener('tick', () => { recTime.textContent = formatDuration(r.elapsedMs); });
    r.addEventListener('limit', () => finishRecording());
    showRecorder(true);
    announce('Recording a voice note. Send voice note to finish, Escape to cancel.');
  }
  async function finishRecording() {
    const r = recorder;
    if (!r) return;
    recorder = null;
    showRecorder(false);
    input.focus();
    const { file, durationMs } = await r.stop();
    if (!file) {
      shell.toast('Nothing was recorded.');
      return;
    }
    chat.uploads.attach(room.id, [file], { kind: 'voice_note', replyTo });
    setReply(null);
    announce(`Sending a voice note of ${formatDuration(durationMs)}.`);
  }
  function cancelRecording() {
    const r = recorder;
    if (!r) return;
    recorder = null;
    r.cancel();
    showRecorder(false);
    input.focus();
    announce('Voice note discarded.');
  }
  recorderBar.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      cancelRecording();
    }
  });

  unsub.push(
    store.on('messages', (d) => { if (d.roomId === room.id) list.schedule(d.reason, d.messageId); }),
    store.on('members', (d) => {
      if (d.roomId !== room.id) return;
      if (!extras) renderMembers(membersPanel, room, chat.me.id, memberOpts);
      renderHead();
      list.schedule('members');
    }),
    store.on('presence', () => { if (!extras) renderMembers(membersPanel, room, chat.me.id, memberOpts); }),
    store.on('blocks', () => {
      if (!extras) renderMembers(membersPanel, room, chat.me.id, memberOpts);
      list.schedule('blocks');
    }),
    store.on('call', () => { if (isDm) renderHead(); }),
    store.on('typing', (d) => { if (d.roomId === room.id) renderTyping(); }),
    store.on('uploads', (d) => { if (d.roomId === room.id) renderUploads(tray, room); }),
    store.on('rooms', (d) => {
      if (d.removed === room.id) {
        router.go(room.communityId && communities?.get(room.communityId) ? `/c/${room.communityId}` : '/rooms',
          { replace: true });
      } else renderHead();
    }),
    store.on('communities', (d) => { if (extras && (!d.id || d.id === room.communityId)) renderHead(); }),
  );

  renderHead();
  if (!extras) renderMembers(membersPanel, room, chat.me.id, memberOpts);
  renderTyping();
  renderUploads(tray, room);
  list.render('init');
  chat.open(room.id);
  jumps.run();

  return {
    el,
    mounted: () => { input.focus(); list.render('init'); },
    focusTarget: () => input,
    destroy: () => {
      if (recorder) {
        recorder.cancel();
        recorder = null;
      }
      chat.stopTyping(room.id);
      extras?.destroy();
      unsub.forEach((f) => f());
      list.destroy();
    },
  };
}

/** A room we are not a member of (a shared link): show what it is and offer to join. */
function previewView({ roomId, chat, api, router, shell }) {
  const body = h('div', { class: 'preview-card' }, h('p', { role: 'status' }, 'Loading room…'));
  const el = h('section', { class: 'view preview', 'aria-labelledby': 'preview-title' },
    h('header', { class: 'view-head' }, shell.menuButton(), icon('hash', 'head-icon'),
      h('h1', { id: 'preview-title' }, 'Room')),
    h('div', { class: 'preview-body' }, body));
  api.room(roomId).then(async (meta) => {
    if (await chat.rememberIfMember(meta).catch(() => false)) {
      router.go(`/rooms/${meta.id}`, { replace: true });
      return;
    }
    el.querySelector('#preview-title').textContent = meta.name;
    document.title = `#${meta.name} · VoiceFlow`;
    const join = h('button', { class: 'btn btn-primary', type: 'button' }, `Join #${meta.name}`);
    join.addEventListener('click', async () => {
      join.disabled = true;
      try {
        await chat.joinByCode(meta.joinCode);
        router.go(`/rooms/${meta.id}`, { replace: true });
      } catch (err) {
        join.disabled = false;
        shell.toast(err.code === 'ROOM_FULL' ? 'This room is full.' : err.message);
      }
    });
    body.replaceChildren(
      h('h2', { text: meta.name }),
      h('p', { text: meta.description || 'No description.' }),
      h('p', { class: 'room-card-meta', text: `Up to ${meta.maxUsers} members` }),
      join);
    join.focus();
  }).catch((err) => {
    const text = err.code === 'FORBIDDEN'
      ? 'This room is private. Ask a member for its invite code and join from “Browse rooms”.'
      : err.code === 'NOT_FOUND' ? 'This room does not exist (or was deleted).' : err.message;
    body.replaceChildren(h('p', { text }), h('a', { class: 'btn btn-primary', href: '/rooms' }, 'Browse rooms'));
  });
  return { el };
}
