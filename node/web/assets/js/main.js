// VoiceFlow's web client: plain ES modules, no build step, served by the node from assets
// embedded in its binary (node/src/web.rs).
//
// Module map:
//   session.js   tokens in localStorage, silent refresh (rotation-safe across tabs)
//   api.js       REST client (/api/v1), errors with the server's code and field
//   socket.js    the WebSocket: acks, heartbeat, reconnect with backoff and jitter
//   store.js     client state (rooms, messages by id, unsent messages, members, typing,
//                unread counts, presence, the voice connection, the call)
//   chat.js      rooms and messages (send, edit, delete, react, reply, history, resume)
//   uploads.js   attachments: uploads with progress, posted in order; the upload limit
//   social.js    the room list from the server, unread badges, read markers, presence
//   voice.js     the WebRTC connection for voice channels, stages and calls
//   calls.js     1:1 calls in direct messages (ringing, answering, hanging up)
//   community.js communities: the rail, channel lists and permissions, join requests, moves
//   router.js    History-API routes
//   dom.js       element, icon and form helpers (text only, never HTML strings)
//   views/       auth, shell (layout, banner, toasts), sidebar (room lists, self footer),
//                browser (room browser), room (room view), messages + message-row, members,
//                voice (voice panel), stage (stage panel), call (call screens), room-form,
//                dialog; community-* (rail and channel list, forms, roles, overrides,
//                members and moderation, invites, audit log and join requests)

import { Api } from './api.js';
import { Calls } from './calls.js';
import { Chat } from './chat.js';
import { Communities } from './community.js';
import { Notifier } from './notifications.js';
import { WebPush } from './push.js';
import { Router } from './router.js';
import { Session } from './session.js';
import { Social } from './social.js';
import { Socket } from './socket.js';
import { Store } from './store.js';
import { Voice } from './voice.js';
import { authView } from './views/auth.js';
import { browserView } from './views/browser.js';
import { auditView, requestsView } from './views/community-audit.js';
import { inviteView } from './views/community-invites.js';
import { roomView } from './views/room.js';
import { Shell } from './views/shell.js';
import { h } from './dom.js';

const root = document.getElementById('root');
const session = new Session();
const api = new Api(session);
const router = new Router(render);

/** The signed-in app, or null. */
let app = null;
/** A line for the sign-in screen (why the user was signed out). */
let notice = '';

function startApp() {
  const store = new Store();
  const socket = new Socket({
    getToken: () => session.accessToken(),
    checkAuth: () => api.verify(),
  });
  const chat = new Chat({ api, socket, store, session });
  const notify = (text) => app?.shell.toast(text);
  const social = new Social({ api, socket, store, chat });
  const voice = new Voice({ socket, store, chat, notify });
  const calls = new Calls({ api, socket, store, chat, voice, notify });
  const communities = new Communities({ api, socket, store, chat, voice, notify, navigate: (p) => router.go(p) });
  const notifier = new Notifier({ socket, store, chat, communities, router });
  const push = new WebPush({ api, socket, store, router });
  const shell = new Shell({ store, chat, session, router, logout, social, voice, calls, communities, api, notifier });
  root.replaceChildren(shell.el);
  chat.start();
  social.start();
  voice.start();
  calls.start();
  communities.start();
  notifier.start();
  push.start();
  // Left, kicked, banned or deleted while one of its pages is open: go home.
  store.on('communities', (d) => {
    if (d.removed && router.route.communityId === d.removed) router.go('/rooms', { replace: true });
  });
  socket.addEventListener('revoked', () => session.clear('revoked'));
  socket.start();
  app = { store, socket, chat, shell, social, voice, calls, communities, notifier, push };
  // Tests reach the client's socket (e.g. a send made by hand) and state here.
  window.__voiceflow = window.__voiceflow || {};
  window.__voiceflow.socket = socket;
  window.__voiceflow.store = store;
  // Refresh the user's details (and find out early if the session was revoked).
  api.verify().then((v) => { session.setUser(v.user); shell.renderSelf(); }).catch(() => {});
}

function stopApp() {
  if (!app) return;
  app.voice.stop();
  app.push.stop();
  app.communities.stop();
  app.calls.stop();
  app.social.stop();
  app.socket.stop();
  app.chat.stop();
  app.shell.destroy();
  app = null;
}

async function logout() {
  const refreshToken = session.refreshToken;
  // This browser stops receiving the user's pushes (while the token still works).
  await app?.push.unsubscribe().catch(() => {});
  // Tell the server first (revokes the refresh token's family), then forget locally either way.
  await api.logout(refreshToken).catch(() => {});
  localStorage.removeItem('vf.lastRoom');
  session.clear('logout');
}

// Another tab signed in as someone else: start over as that user. Tokens rotated (here or in
// another tab): the open WebSocket is extended with the new access token.
session.addEventListener('change', () => {
  if (app && session.user && session.user.id !== app.chat.me.id) {
    stopApp();
    router.go('/', { replace: true });
  } else if (app) {
    app.socket.refreshAuth();
  }
});

session.addEventListener('signedout', (e) => {
  stopApp();
  notice = {
    expired: 'Your session has expired. Please sign in again.',
    elsewhere: 'You were signed out in another tab.',
    revoked: 'You were signed out (this sign-in was ended).',
  }[e.detail.reason] || '';
  router.go('/login', { replace: true });
});

function render(route) {
  if (!session.signedIn) {
    stopApp();
    const mode = route.name === 'register' ? 'register' : 'login';
    if (route.name !== mode) {
      history.replaceState(null, '', '/login');
    }
    const view = authView({
      mode,
      api,
      session,
      notice,
      onSwitch: (m) => router.go(`/${m}`),
      onDone: () => {
        notice = '';
        router.go(sessionStorage.getItem('vf.after') || '/', { replace: true });
        sessionStorage.removeItem('vf.after');
      },
    });
    root.replaceChildren(view.el);
    view.focus();
    document.title = mode === 'login' ? 'Sign in · VoiceFlow' : 'Create an account · VoiceFlow';
    return;
  }
  if (route.name === 'login' || route.name === 'register') {
    router.go('/', { replace: true });
    return;
  }
  if (!app) startApp();
  const { shell, store, chat, voice, calls, communities } = app;
  switch (route.name) {
    case 'home': {
      const last = localStorage.getItem('vf.lastRoom');
      router.go(last && store.rooms.has(last) ? `/rooms/${last}` : '/rooms', { replace: true });
      return;
    }
    case 'room':
      if (route.communityId) {
        if (store.room(route.id)?.communityId !== route.communityId) {
          // Not (yet) a channel we can see: the lists may still be loading (GET /users/me/rooms
          // may have listed it first, as a plain room).
          shell.show(waitForCommunity(route, () => render(router.route)));
          return;
        }
        localStorage.setItem(`vf.lastChannel.${route.communityId}`, route.id);
      } else localStorage.setItem('vf.lastRoom', route.id);
      shell.show(roomView({ roomId: route.id, store, chat, api, router, shell, voice, calls, communities }));
      return;
    case 'community': {
      const c = communities.get(route.communityId);
      if (!c || !c.channelsLoaded) {
        shell.show(waitForCommunity(route, () => render(router.route)));
        // Opening a community reads its channels again (access may have changed).
        if (c) communities.load(c.id).catch(() => {});
        return;
      }
      communities.load(c.id).catch(() => {});
      const last = localStorage.getItem(`vf.lastChannel.${c.id}`);
      const first = c.channels.find((ch) => ch.id === last) || [...c.channels]
        .sort((a, b) => (a.kind === 'text' ? 0 : 1) - (b.kind === 'text' ? 0 : 1) || a.position - b.position)[0];
      if (first && store.room(first.id)) {
        router.go(`/c/${c.id}/${first.id}`, { replace: true });
        return;
      }
      shell.show(emptyCommunity(c, shell));
      return;
    }
    case 'audit':
    case 'requests': {
      const c = communities.get(route.communityId);
      if (!c) {
        shell.show(waitForCommunity(route, () => render(router.route)));
        return;
      }
      shell.show(route.name === 'audit' ? auditView({ c, api, shell, me: app.chat.me }) : requestsView({ c, communities, store, shell }));
      return;
    }
    case 'invite':
      shell.show(inviteView({ code: route.code, api, communities, router, shell }));
      return;
    case 'browse':
      shell.show(browserView({ store, chat, api, router, shell }));
      return;
    default:
      router.go('/rooms', { replace: true });
  }
}

/** A community page whose community (or channel) is not loaded yet: shown until the lists
 *  arrive, then `retry()` renders the route again; "not found" once they are in and it is not. */
function waitForCommunity(route, retry) {
  const { store, communities, shell } = app;
  const status = h('p', { role: 'status' }, 'Loading…');
  const el = h('section', { class: 'view community-page' },
    h('header', { class: 'view-head' }, shell.menuButton(), h('h1', { class: 'room-title' }, 'Community')),
    h('div', { class: 'community-page-body' }, status));
  let done = false;
  const check = () => {
    if (done) return;
    const c = communities.get(route.communityId);
    const ready = c && c.channelsLoaded && (route.name !== 'room' || store.room(route.id)?.communityId === route.communityId);
    if (ready) {
      done = true;
      retry();
    } else if (c?.channelsLoaded && route.name === 'room') {
      status.textContent = 'This channel does not exist, or you cannot see it.';
    }
  };
  const unsub = [store.on('communities', check), store.on('rooms', check)];
  const timer = setTimeout(() => {
    if (!communities.get(route.communityId)) status.textContent = 'This community does not exist, or you are not a member.';
  }, 8000);
  return { el, destroy: () => { done = true; clearTimeout(timer); unsub.forEach((f) => f()); } };
}

/** A community with no channel this user can see (yet). */
function emptyCommunity(c, shell) {
  document.title = `${c.name} · VoiceFlow`;
  return {
    el: h('section', { class: 'view community-page' },
      h('header', { class: 'view-head' }, shell.menuButton(), h('h1', { class: 'room-title', text: c.name })),
      h('div', { class: 'community-page-body' },
        h('p', { text: c.meta?.description || '' }),
        h('p', { class: 'muted', role: 'status' }, c.can('manage_channels', app.chat.me.id)
          ? 'No channels yet: create one from the menu at the top of the channel list.'
          : 'There are no channels you can see here yet.'))),
  };
}

// Keep the path a signed-out visitor asked for, to return there after signing in.
if (!session.signedIn && router.route.name !== 'login' && router.route.name !== 'register') {
  sessionStorage.setItem('vf.after', location.pathname);
}
router.start();
