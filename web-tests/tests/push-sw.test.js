// The web client's service worker receiving Web Push: Bob's client (notifications granted)
// registers /sw.js; DevTools delivers push messages to that registration as a push service
// would after the browser decrypted them (Playwright's contexts are off the record, where
// Chromium has no push subscriptions, and there is no push service here; the node's
// encryption is checked against a decrypting push service in node/tests/push.rs). The worker
// shows each as a notification with the payload's title and body, a tag that collapses repeats
// of one message, a call that stays until answered, and a path of this client only. A click
// (the worker's `openPath`, run in the worker: nothing here can click a system notification)
// routes the open tab to the room.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { eventually, registerInUi, rest, restLogin, startWorld } from '../lib/harness.js';

/** The notifications the page's service worker registration shows now. */
function notifications(page) {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    return (await reg.getNotifications()).map((n) => ({
      title: n.title, body: n.body, tag: n.tag, url: n.data?.url, sticky: n.requireInteraction,
    }));
  });
}

describe('service worker and Web Push', { timeout: 120_000 }, () => {
  let world; let node; let bob; let cdp; let registrationId; let room;

  before(async () => {
    world = await startWorld('push-sw', { people: ['bob'] });
    ({ node, bob } = world);
    await bob.context.grantPermissions(['notifications'], { origin: node.url });
  });
  after(() => world?.close());

  it('registers /sw.js once notifications are granted', async () => {
    await registerInUi(bob.page, 'bob');
    const token = (await restLogin(node.url, 'bob')).token;
    const made = await rest(node.url, 'POST', '/rooms', { token, body: { name: 'lunch' } });
    assert.equal(made.status, 201);
    room = made.body.data;
    const script = await eventually(
      () => bob.page.evaluate(async () => (await navigator.serviceWorker.getRegistration('/'))?.active?.scriptURL),
      { what: 'an active service worker' },
    );
    assert.equal(script, `${node.url}/sw.js`);
    cdp = await bob.context.newCDPSession(bob.page);
    const registrations = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    await cdp.send('ServiceWorker.enable');
    registrationId = await eventually(
      () => registrations.find((r) => r.scopeURL === `${node.url}/` && !r.isDeleted)?.registrationId,
      { what: 'the registration seen by DevTools' },
    );
  });

  it('shows a pushed mention, and a repeat of the same message replaces it', async () => {
    const payload = {
      kind: 'mention', roomId: room.id, messageId: '42', title: 'ann mentioned you',
      body: '@bob lunch?', url: `/rooms/${room.id}`,
    };
    const deliver = (data) => cdp.send('ServiceWorker.deliverPushMessage', {
      origin: node.url, registrationId, data: JSON.stringify(data),
    });
    await deliver(payload);
    await deliver({ ...payload, body: '@bob lunch at 1?' });
    const shown = await eventually(async () => {
      const all = await notifications(bob.page);
      return all.length === 1 && all[0].body === '@bob lunch at 1?' ? all : null;
    }, { what: 'one notification for message 42, the newer text' });
    assert.deepEqual(shown[0], {
      title: 'ann mentioned you', body: '@bob lunch at 1?', tag: 'mention:42',
      url: `/rooms/${room.id}`, sticky: false,
    });
  });

  it('keeps a call until answered and never links off the client', async () => {
    await cdp.send('ServiceWorker.deliverPushMessage', {
      origin: node.url,
      registrationId,
      data: JSON.stringify({
        kind: 'call', roomId: room.id, title: 'Incoming call', body: 'ann is calling',
        url: '//evil.example/phish',
      }),
    });
    await cdp.send('ServiceWorker.deliverPushMessage', {
      origin: node.url, registrationId, data: 'not json',
    });
    const all = await eventually(async () => {
      const list = await notifications(bob.page);
      return list.length === 3 ? list : null;
    }, { what: 'three notifications' });
    const call = all.find((n) => n.tag === `call:${room.id}`);
    assert.ok(call, JSON.stringify(all));
    assert.equal(call.sticky, true);
    assert.equal(call.url, '/', 'an off-client url becomes the client root');
    const garbled = all.find((n) => n.title === 'VoiceFlow');
    assert.ok(garbled, `a payload that is not JSON still shows something: ${JSON.stringify(all)}`);
    assert.equal(garbled.url, '/');
    assert.deepEqual(bob.errors, []);
  });

  it('a click on a notification routes the open tab to its room', async () => {
    const worker = await eventually(
      () => bob.context.serviceWorkers().find((w) => w.url().endsWith('/sw.js')),
      { what: 'the service worker as Playwright sees it' },
    );
    await worker.evaluate((path) => openPath(path), `/rooms/${room.id}`);
    await bob.page.getByRole('heading', { name: 'lunch', exact: true }).waitFor();
    assert.equal(new URL(bob.page.url()).pathname, `/rooms/${room.id}`);
    assert.deepEqual(bob.errors, []);
  });
});
