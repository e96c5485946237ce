// The voice panel of a voice channel (a room of kind "voice"), above its text chat: who is in
// the channel (tiles with a green ring on whoever is speaking, muted and deafened icons), and
// Join / Mute / Deafen / Leave. Also the shared pieces the stage panel, the self footer and the
// sidebar use: participant tiles and the mic / deafen buttons.

import { avatar, h, icon } from '../dom.js';

/** A participant tile: avatar (ringed while speaking), name, muted / deafened icons, and a
 *  moderator's server mute / deafen (community channels) shown apart from the person's own.
 *  The server reports a server mute as `muted` (the SFU drops the audio either way), so a
 *  participant known to be server-muted shows the moderator's mark instead of the plain one. */
export function voiceTile(p_, { meId, actions = null, role = null, moderation = null, video = null } = {}) {
  const p = withModeration(p_, moderation);
  const states = [];
  if (p.speaking && !p.muted) states.push('speaking');
  if (p.muted && !p.serverMuted) states.push('muted');
  if (p.deafened && !p.serverDeafened) states.push('deafened');
  if (p.serverMuted) states.push('server muted');
  if (p.serverDeafened) states.push('server deafened');
  if (video) states.push('camera on');
  return h('li', {
    class: `voice-tile${p.speaking && !p.muted ? ' speaking' : ''}${video ? ' has-video' : ''}`,
    dataset: { userId: p.userId, speaking: String(Boolean(p.speaking && !p.muted)) },
  },
  video ? h('span', { class: 'voice-avatar voice-frame' }, video)
    : h('span', { class: 'voice-avatar' }, avatar(p.userId, p.username)),
  h('span', { class: 'voice-name' },
    h('span', { class: 'voice-name-text', text: p.username }),
    p.userId === meId ? h('span', { class: 'member-you', text: '(you)' }) : null,
    role ? h('span', { class: `tag tag-${role}`, text: role }) : null),
  h('span', { class: 'voice-icons' },
    p.muted && !p.serverMuted ? h('span', { class: 'voice-icon muted', title: 'Muted', 'data-state': 'muted' }, icon('micOff')) : null,
    p.deafened && !p.serverDeafened ? h('span', { class: 'voice-icon deafened', title: 'Deafened', 'data-state': 'deafened' },
      icon('headphonesOff')) : null,
    p.serverMuted ? h('span', { class: 'voice-icon server', title: 'Muted by a moderator', 'data-state': 'server-muted' },
      icon('micOff')) : null,
    p.serverDeafened ? h('span', { class: 'voice-icon server', title: 'Deafened by a moderator', 'data-state': 'server-deafened' },
      icon('headphonesOff')) : null),
  h('span', { class: 'sr-only', text: states.length ? `, ${states.join(', ')}` : '' }),
  actions);
}

/** A participant with what is known of a moderator's mute / deafen (`moderation`: {mute,
 *  deafen} from the community's member list or the live events, see community.js). */
export function withModeration(p, moderation) {
  if (!moderation) return p;
  return { ...p, serverMuted: p.serverMuted || Boolean(moderation.mute), serverDeafened: p.serverDeafened || Boolean(moderation.deafen) };
}

/** What is known of a moderator's mute / deafen of someone in a community channel. */
export function moderationOf(store, room, userId) {
  return room?.communityId ? store.voiceModeration?.get(`${room.communityId}:${userId}`) ?? null : null;
}

/** Mute and deafen toggles for the current connection (aria-pressed shows the state). */
export function micButtons(voice, store, { small = false } = {}) {
  const v = store.voice;
  if (!v) return [];
  const cls = small ? 'icon-btn' : 'icon-btn voice-btn';
  return [
    h('button', {
      class: `${cls}${v.muted ? ' is-off' : ''}`, type: 'button', 'data-key': 'mute',
      'aria-label': 'Mute microphone', 'aria-pressed': String(v.muted),
      title: v.muted ? 'Unmute' : 'Mute', disabled: v.noMic,
      onclick: () => voice.toggleMute(),
    }, icon(v.muted || v.noMic ? 'micOff' : 'mic')),
    h('button', {
      class: `${cls}${v.deafened ? ' is-off' : ''}`, type: 'button', 'data-key': 'deafen',
      'aria-label': 'Deafen', 'aria-pressed': String(v.deafened),
      title: v.deafened ? 'Undeafen' : 'Deafen',
      onclick: () => voice.toggleDeafen(),
    }, icon(v.deafened ? 'headphonesOff' : 'headphones')),
  ];
}

/** Camera and screen-share toggles for the current connection. */
export function videoButtons(voice, store) {
  const v = store.voice;
  if (!v) return [];
  const video = voice.video;
  return [
    h('button', {
      class: `icon-btn voice-btn${video.cameraOn ? ' is-on' : ''}`, type: 'button', 'data-key': 'camera',
      'aria-label': 'Camera', 'aria-pressed': String(video.cameraOn),
      title: video.cameraOn ? 'Turn the camera off' : 'Turn the camera on',
      onclick: () => video.toggleCamera(),
    }, icon('camera')),
    h('button', {
      class: `icon-btn voice-btn${video.screenOn ? ' is-on' : ''}`, type: 'button', 'data-key': 'screen',
      'aria-label': 'Share screen', 'aria-pressed': String(video.screenOn),
      title: video.screenOn ? 'Stop sharing' : 'Share your screen',
      onclick: () => video.toggleScreen(),
    }, icon('monitor')),
  ];
}

/** Microphone and camera choice (the devices known when the panel last rendered). */
export function deviceSelects(voice, { open = false, onToggle = () => {} } = {}) {
  const video = voice.video;
  const select = (label, key, list, current, choose) => h('label', { class: 'voice-device' },
    h('span', { text: label }),
    h('select', { 'data-key': key, 'aria-label': label, onchange: (e) => choose(e.target.value) },
      ...list.map((d) => h('option', { value: d.deviceId, text: d.label, selected: d.deviceId === current }))));
  return h('details', { class: 'voice-devices', open, ontoggle: (e) => onToggle(e.target.open) },
    h('summary', { text: 'Devices' }),
    select('Microphone', 'mic-device', video.deviceList.audio, video.micId, (id) => video.chooseMic(id)),
    select('Camera', 'camera-device', video.deviceList.video, video.cameraId, (id) => video.chooseCamera(id)));
}

/** The largest screen share (the first one) above the tiles, and the tiles' videos. */
export function videoOf(voice, meId, p, kind) {
  if (kind === 'camera' && !p.video) return null;
  if (kind === 'screen' && !p.screen) return null;
  if (p.userId === meId) return kind === 'camera' ? voice.video.localElement() : null;
  return voice.video.element(p.sessionId, kind);
}

export function spotlight(voice, meId, people) {
  const sharer = people.find((p) => p.userId !== meId && videoOf(voice, meId, p, 'screen'));
  if (!sharer) return null;
  return h('figure', { class: 'voice-spotlight', dataset: { userId: sharer.userId } },
    videoOf(voice, meId, sharer, 'screen'),
    h('figcaption', { text: `${sharer.username} is sharing their screen` }));
}

/** Replaces a container's children, keeping focus on the control with the same data-key. */
export function replaceKeepingFocus(container, children) {
  const active = document.activeElement;
  const key = container.contains(active) ? active?.dataset?.key : null;
  container.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
  if (key) container.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

/**
 * Joins the voice session of `roomId` for a panel: refused while in a call, `setBusy(true)`
 * until it is done, and a failure told in words (`refusal(err)`, or "Could not …").
 */
export async function joinChannel({ roomId, store, voice, shell, setBusy, refusal }) {
  if (store.call) {
    shell.toast('You are in a call: hang up first.');
    return;
  }
  setBusy(true);
  try {
    await voice.join(roomId);
  } catch (err) {
    shell.toast(refusal(err));
  } finally {
    setBusy(false);
  }
}

/** What the connection is doing, in words. */
export function voiceStateText(v) {
  if (!v) return '';
  if (v.state === 'connected') return 'Voice connected';
  return 'Connecting…';
}

/** The panel for a voice channel. */
export function voicePanel({ room, store, chat, voice, shell }) {
  const body = h('div', { class: 'voice-body' });
  const el = h('section', { class: 'voice-panel', 'aria-label': `Voice channel ${room.name}` }, body);
  let busy = false;
  let devicesAsked = false;
  let devicesOpen = false;

  const join = () => joinChannel({
    roomId: room.id, store, voice, shell,
    setBusy: (b) => { busy = b; render(); },
    refusal: (err) => (err.code === 'ROOM_FULL' ? 'The voice channel is full.'
      : `Could not join voice: ${err.message}`),
  });

  function render() {
    const v = store.voice;
    const here = voice.inChannel(room.id);
    const people = [...(here ? v.participants : room.voiceMembers).values()]
      .sort((a, b) => a.username.localeCompare(b.username));
    const status = here
      ? h('p', { class: `voice-status ${v.state}`, role: 'status' }, h('span', { class: 'voice-dot' }), voiceStateText(v))
      : h('p', { class: 'voice-status', role: 'status' },
        people.length ? `${people.length} in the channel` : 'Nobody is here yet.');
    if (here && !voice.video.deviceList.video.length && !devicesAsked) {
      devicesAsked = true;
      voice.video.devices().then(render, () => {});
    }
    const controls = here
      ? [...micButtons(voice, store), ...videoButtons(voice, store),
        h('button', {
          class: 'btn btn-danger voice-leave', type: 'button', 'data-key': 'leave',
          'aria-label': 'Leave voice channel', onclick: () => voice.leave(),
        }, icon('phoneOff'), 'Leave')]
      : [h('button', {
        class: 'btn btn-primary voice-join', type: 'button', 'data-key': 'join', disabled: busy,
        'aria-label': 'Join voice channel', onclick: join,
      }, icon('volume'), busy ? 'Joining…' : 'Join voice')];
    replaceKeepingFocus(body, [
      h('div', { class: 'voice-top' }, status, h('div', { class: 'voice-controls' }, ...controls)),
      here ? deviceSelects(voice, { open: devicesOpen, onToggle: (o) => { devicesOpen = o; } }) : null,
      here ? spotlight(voice, chat.me.id, people) : null,
      people.length
        ? h('ul', { class: 'voice-tiles', 'aria-label': 'In the voice channel' },
          ...people.map((p) => voiceTile(p, {
            meId: chat.me.id,
            moderation: moderationOf(store, room, p.userId),
            video: here ? videoOf(voice, chat.me.id, p, 'camera') : null,
          })))
        : null,
    ]);
  }

  const unsubs = [
    store.on('voice', (d) => { if (!d.roomId || d.roomId === room.id) render(); }),
    store.on('moderation', (d) => { if (d.communityId === room.communityId) render(); }),
  ];
  render();
  return { el, destroy: () => unsubs.forEach((f) => f()) };
}
