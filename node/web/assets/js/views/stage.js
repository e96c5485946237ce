// The panel of a stage room (kind "stage"), above its chat: participants grouped by role
// (hosts, speakers, listeners); Join / Leave; listeners raise and lower a hand; speakers mute
// and deafen; hosts see the raised hands (oldest first) with Promote buttons, can demote, kick
// or ban anyone who is not a host, and end the stage. Every change arrives as stage:updated
// (the participants and the queue as they are now).

import { formatTime, h, icon } from '../dom.js';
import { confirmDialog } from './dialog.js';
import {
  joinChannel, micButtons, moderationOf, replaceKeepingFocus, spotlight, videoButtons, videoOf, voiceStateText, voiceTile,
} from './voice.js';

const ROLES = [['host', 'Hosts'], ['speaker', 'Speakers'], ['listener', 'Listeners']];

export function stagePanel({ room, store, chat, voice, shell }) {
  const body = h('div', { class: 'voice-body' });
  const el = h('section', { class: 'voice-panel stage-panel', 'aria-label': `Stage ${room.name}` }, body);
  let busy = false;

  const run = (what, fn) => async () => {
    try {
      await fn();
    } catch (err) {
      shell.toast(`Could not ${what}: ${err.message}`);
    }
  };

  const join = () => joinChannel({
    roomId: room.id, store, voice, shell,
    setBusy: (b) => { busy = b; render(); },
    refusal: (err) => (err.code === 'FORBIDDEN' ? 'You cannot join this stage.'
      : err.code === 'ROOM_FULL' ? 'The stage is full.' : `Could not join the stage: ${err.message}`),
  });

  function hostActions(p, amHost) {
    if (!amHost || p.userId === chat.me.id || p.role === 'host') return null;
    const buttons = [];
    if (p.role === 'listener') {
      buttons.push(h('button', {
        class: 'btn btn-small btn-primary', type: 'button', 'data-key': `promote-${p.userId}`,
        'aria-label': `Invite ${p.username} to speak`, onclick: run('promote', () => voice.promote(p.userId)),
      }, 'Promote'));
    } else {
      buttons.push(h('button', {
        class: 'btn btn-small btn-ghost', type: 'button', 'data-key': `demote-${p.userId}`,
        'aria-label': `Move ${p.username} to the audience`, onclick: run('demote', () => voice.demote(p.userId)),
      }, 'Demote'));
    }
    buttons.push(
      h('button', {
        class: 'icon-btn', type: 'button', 'data-key': `kick-${p.userId}`, title: 'Remove from the stage',
        'aria-label': `Remove ${p.username} from the stage`, onclick: run('remove them', () => voice.kick(p.userId)),
      }, icon('userX')),
      h('button', {
        class: 'icon-btn icon-danger', type: 'button', 'data-key': `ban-${p.userId}`, title: 'Ban from the room',
        'aria-label': `Ban ${p.username} from the room`,
        onclick: async () => {
          const ok = await confirmDialog({ title: `Ban ${p.username}`, danger: true, confirmLabel: 'Ban',
            message: `${p.username} leaves the stage and cannot come back to this room.` });
          if (ok) await run('ban them', () => voice.ban(p.userId))();
        },
      }, icon('ban')));
    return h('span', { class: 'tile-actions' }, ...buttons);
  }

  function render() {
    const v = store.voice;
    const here = voice.inChannel(room.id);
    const people = [...(here ? v.participants : room.voiceMembers).values()];
    const queue = (here ? v.queue : room.stageQueue) || [];
    const me = here ? v.participants.get(chat.me.id) : null;
    const myRole = me?.role || null;
    const amHost = myRole === 'host';
    const handUp = queue.some((q) => q.userId === chat.me.id);
    const nameOf = (id) => people.find((p) => p.userId === id)?.username || room.members.get(id)?.username || 'someone';

    const controls = [];
    if (!here) {
      controls.push(h('button', {
        class: 'btn btn-primary', type: 'button', 'data-key': 'join', disabled: busy,
        'aria-label': 'Join stage', onclick: join,
      }, icon('stage'), busy ? 'Joining…' : 'Join stage'));
    } else {
      if (myRole === 'listener') {
        controls.push(h('button', {
          class: `btn ${handUp ? 'btn-ghost' : 'btn-primary'}`, type: 'button', 'data-key': 'hand',
          'aria-pressed': String(handUp), 'aria-label': handUp ? 'Lower hand' : 'Raise hand',
          onclick: run('change your hand', () => (handUp ? voice.lowerHand() : voice.raiseHand())),
        }, icon('hand'), handUp ? 'Lower hand' : 'Raise hand'));
      }
      controls.push(...micButtons(voice, store).filter((b) => myRole !== 'listener' || b.dataset.key !== 'mute'));
      // Hosts and speakers may show their camera or screen (listeners may not publish).
      if (myRole !== 'listener') controls.push(...videoButtons(voice, store));
      if (amHost) {
        controls.push(h('button', {
          class: 'btn btn-danger', type: 'button', 'data-key': 'end', 'aria-label': 'End stage',
          onclick: async () => {
            const ok = await confirmDialog({ title: 'End the stage', danger: true, confirmLabel: 'End stage',
              message: 'Everyone on the stage is disconnected.' });
            if (ok) await run('end the stage', () => voice.endStage())();
          },
        }, 'End stage'));
      }
      controls.push(h('button', {
        class: 'btn btn-ghost', type: 'button', 'data-key': 'leave', 'aria-label': 'Leave stage',
        onclick: () => voice.leave(),
      }, icon('phoneOff'), 'Leave'));
    }

    const status = here
      ? h('p', { class: `voice-status ${v.state}`, role: 'status' }, h('span', { class: 'voice-dot' }),
        `${voiceStateText(v)} · you are ${myRole === 'host' ? 'a host' : `a ${myRole || 'listener'}`}`)
      : h('p', { class: 'voice-status', role: 'status' },
        people.length ? `${people.length} on the stage` : 'The stage is quiet.');

    const groups = ROLES.map(([role, title]) => {
      const list = people.filter((p) => (p.role || 'listener') === role)
        .sort((a, b) => a.username.localeCompare(b.username));
      if (!list.length) return null;
      return h('div', { class: 'stage-group', dataset: { role } },
        h('h3', { class: 'stage-group-title', text: `${title} — ${list.length}` }),
        h('ul', { class: 'voice-tiles', 'aria-label': title },
          ...list.map((p) => voiceTile(p, {
            meId: chat.me.id, role, actions: hostActions(p, amHost), moderation: moderationOf(store, room, p.userId),
            video: here ? videoOf(voice, chat.me.id, p, 'camera') : null,
          }))));
    });

    const hands = amHost && queue.length
      ? h('section', { class: 'hand-queue', 'aria-label': 'Raised hands' },
        h('h3', { class: 'stage-group-title' }, icon('hand'), ` Raised hands — ${queue.length}`),
        h('ol', { class: 'hand-list' }, ...queue.map((q) => h('li', { class: 'hand', dataset: { userId: q.userId } },
          h('span', { class: 'hand-name', text: nameOf(q.userId) }),
          h('time', { class: 'hand-time', datetime: new Date(q.at).toISOString(), text: formatTime(new Date(q.at)) }),
          h('button', {
            class: 'btn btn-small btn-primary', type: 'button', 'data-key': `q-promote-${q.userId}`,
            'aria-label': `Promote ${nameOf(q.userId)} to speaker`,
            onclick: run('promote', () => voice.promote(q.userId)),
          }, 'Promote')))))
      : null;

    replaceKeepingFocus(body, [
      h('div', { class: 'voice-top' }, status, h('div', { class: 'voice-controls' }, ...controls)),
      hands,
      here ? spotlight(voice, chat.me.id, people) : null,
      h('div', { class: 'stage-groups' }, ...groups),
    ]);
  }

  const unsub = store.on('voice', (d) => { if (!d.roomId || d.roomId === room.id) render(); });
  render();
  return { el, destroy: unsub };
}
