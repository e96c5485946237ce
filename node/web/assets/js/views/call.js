// The screens of a 1:1 call (controller: calls.js):
// - outgoing: an overlay card "Calling bob…" with the state (ringing) and Cancel;
// - incoming: a modal dialog "bob is calling" with Accept (focused) and Decline; Escape
//   declines;
// - in the call: a bar above the main view with the other person, a running duration, mute,
//   deafen, camera, screen share and Hang up; below it, when video is on, the other person's
//   screen share, their camera and this client's own camera (mirrored), whichever room is open.
// When a call ends, calls.js shows a notice with the reason (a toast).

import { avatar, formatDuration, h, icon } from '../dom.js';
import { micButtons, replaceKeepingFocus, videoButtons, videoOf } from './voice.js';

export class CallUi {
  #unsub = [];
  #tick = 0;
  #dialog = null;
  #dialogCallId = null;

  constructor({ store, calls, router, shell }) {
    this.store = store;
    this.calls = calls;
    this.router = router;
    this.shell = shell;
    this.bar = h('div', { class: 'call-bar', hidden: true, role: 'region', 'aria-label': 'Call' });
    this.overlay = h('div', { class: 'call-overlay', hidden: true });
    this.#unsub.push(
      store.on('call', () => this.render()),
      store.on('voice', () => this.render()),
    );
    this.render();
  }

  destroy() {
    this.#unsub.forEach((f) => f());
    clearInterval(this.#tick);
    this.#closeDialog();
  }

  render() {
    const c = this.store.call;
    const mine = c?.mine;
    const incoming = c && !c.outgoing && !mine && (c.state === 'ringing' || c.state === 'dialing');
    const outgoing = c && c.outgoing && mine && (c.state === 'dialing' || c.state === 'ringing');
    const live = c && mine && (c.state === 'connecting' || c.state === 'connected');

    if (incoming) this.#openDialog(c);
    else this.#closeDialog();

    // Outgoing overlay.
    if (outgoing) {
      const had = !this.overlay.hidden;
      replaceKeepingFocus(this.overlay, [h('section', {
        class: 'call-card', role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': 'call-out-title',
        'aria-describedby': 'call-out-state',
      },
      h('div', { class: 'call-avatar ringing' }, avatar(c.calleeId || c.peerName, c.peerName)),
      h('h2', { id: 'call-out-title', text: `Calling ${c.peerName}…` }),
      h('p', { class: 'call-state', id: 'call-out-state', role: 'status', dataset: { state: c.state },
        text: c.state === 'ringing' ? 'Ringing…' : 'Dialing…' }),
      h('div', { class: 'call-actions' },
        h('button', {
          class: 'btn btn-danger', type: 'button', 'data-key': 'cancel', 'aria-label': 'Cancel call',
          onclick: () => this.calls.cancel().catch((e) => this.shell.toast(`Could not cancel: ${e.message}`)),
        }, icon('phoneOff'), 'Cancel')))]);
      this.overlay.hidden = false;
      if (!had) this.overlay.querySelector('button')?.focus();
    } else {
      this.overlay.hidden = true;
      this.overlay.replaceChildren();
    }

    // In-call bar.
    const videos = live ? this.#videos() : [];
    const sig = live ? [c.callId, c.state, c.peerName, this.store.voice?.muted, this.store.voice?.deafened,
      this.store.voice?.noMic, this.calls.voice.video?.cameraOn, this.calls.voice.video?.screenOn,
      ...videos.map(([name]) => name)].join('|') : '';
    if (live && this.bar.dataset.sig === sig && !this.bar.hidden) return;
    this.bar.dataset.sig = sig;
    clearInterval(this.#tick);
    if (live) {
      const duration = h('span', { class: 'call-duration', role: 'timer', 'aria-label': 'Call duration' });
      const update = () => {
        duration.textContent = c.state === 'connected' ? formatDuration(this.calls.elapsed()) : '';
      };
      update();
      this.#tick = setInterval(update, 1000);
      const stateText = c.state === 'connected' ? `In a call with ${c.peerName}` : `Connecting to ${c.peerName}…`;
      replaceKeepingFocus(this.bar, [
        h('span', { class: `call-dot ${c.state}`, 'aria-hidden': 'true' }),
        h('a', { class: 'call-with', href: `/rooms/${c.roomId}`, dataset: { state: c.state }, text: stateText }),
        duration,
        h('span', { class: 'call-controls' },
          ...micButtons(this.calls.voice, this.store, { small: true }),
          ...videoButtons(this.calls.voice, this.store),
          h('button', {
            class: 'btn btn-danger btn-small', type: 'button', 'data-key': 'hangup', 'aria-label': 'Hang up',
            onclick: () => this.calls.hangup().catch((e) => this.shell.toast(`Could not hang up: ${e.message}`)),
          }, icon('phoneOff'), 'Hang up')),
        videos.length ? h('div', { class: 'call-videos', role: 'group', 'aria-label': 'Call video' },
          ...videos.map(([name, el, label]) => h('figure', { class: `call-video ${name}`, dataset: { track: name } },
            el, h('figcaption', { text: label })))) : null,
      ]);
      this.bar.hidden = false;
      this.bar.dataset.state = c.state;
    } else {
      this.bar.hidden = true;
      this.bar.replaceChildren();
    }
  }

  /** The call's videos to show: [name, <video>, caption] (the other person's screen share
   *  first, then their camera, then this client's own camera). */
  #videos() {
    const voice = this.calls.voice;
    const v = this.store.voice;
    if (!v || !voice.video) return [];
    const meId = this.calls.me?.id;
    const people = [...v.participants.values()];
    const out = [];
    for (const p of people.filter((q) => q.userId !== meId)) {
      const screen = videoOf(voice, meId, p, 'screen');
      if (screen) out.push(['screen', screen, `${p.username}'s screen`]);
      const camera = videoOf(voice, meId, p, 'camera');
      if (camera) out.push(['camera', camera, p.username]);
    }
    const self = people.find((q) => q.userId === meId);
    const mine = self && videoOf(voice, meId, self, 'camera');
    if (mine) out.push(['self', mine, 'You']);
    return out;
  }

  #openDialog(c) {
    if (this.#dialog && this.#dialogCallId === c.callId) {
      // call:state may come before call:incoming (which names the caller).
      const title = this.#dialog.querySelector('#call-in-title');
      if (title && title.textContent !== `${c.peerName} is calling`) {
        title.textContent = `${c.peerName} is calling`;
        this.#dialog.querySelector('.call-avatar')?.replaceChildren(avatar(c.callerId, c.peerName));
      }
      return;
    }
    this.#closeDialog();
    const returnFocus = document.activeElement;
    const accept = h('button', {
      class: 'btn btn-accept', type: 'button', autofocus: true,
      onclick: async () => {
        accept.disabled = true;
        try {
          await this.calls.accept();
          this.router.go(`/rooms/${c.roomId}`);
        } catch (e) {
          accept.disabled = false;
          this.shell.toast(`Could not answer: ${e.message}`);
        }
      },
    }, icon('phone'), 'Accept');
    const decline = h('button', {
      class: 'btn btn-danger', type: 'button',
      onclick: () => this.calls.decline().catch((e) => this.shell.toast(`Could not decline: ${e.message}`)),
    }, icon('phoneOff'), 'Decline');
    const dialog = h('dialog', {
      class: 'dialog call-dialog', role: 'dialog', 'aria-labelledby': 'call-in-title',
      'aria-describedby': 'call-in-desc',
    },
    h('div', { class: 'dialog-body call-incoming' },
      h('div', { class: 'call-avatar ringing' }, avatar(c.callerId, c.peerName)),
      h('h2', { id: 'call-in-title', text: `${c.peerName} is calling` }),
      h('p', { id: 'call-in-desc', text: 'Incoming voice call' }),
      h('div', { class: 'call-actions' }, decline, accept)));
    dialog.addEventListener('cancel', (e) => {
      // Escape declines.
      e.preventDefault();
      decline.click();
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
    });
    document.body.append(dialog);
    dialog.showModal();
    accept.focus();
    this.#dialog = dialog;
    this.#dialogCallId = c.callId;
  }

  #closeDialog() {
    const d = this.#dialog;
    this.#dialog = null;
    this.#dialogCallId = null;
    if (d?.open) d.close();
    else d?.remove();
  }
}
