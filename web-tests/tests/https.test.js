// The web client over HTTPS: a node started with --tls-self-signed, reached by a name that is
// not loopback (voiceflow.test, mapped to 127.0.0.1 inside Chromium), so only TLS makes the
// page a secure context and lets it have a microphone. Two people register, the page's
// WebSocket is wss://, the document carries HSTS, and both join a voice channel and hear
// each other through the node's SFU.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  assertReceivingAudio, createRoomInUi, eventually, inviteCode, joinByCodeInUi, registerInUi, startWorld,
} from '../lib/harness.js';

const HOST = 'voiceflow.test';
const panel = (page) => page.locator('.voice-panel');

describe('the web client over HTTPS', { timeout: 180_000 }, () => {
  let world; let alice; let bob;
  const sockets = [];

  before(async () => {
    world = await startWorld('https', {
      media: true,
      people: ['alice', 'bob'],
      toml: `[tls]\nself_signed_names = ["${HOST}"]\n`,
      nodeArgs: ['--tls-self-signed'],
      // Chromium resolves the name to the node; its certificate is self-signed.
      browserArgs: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`, '--ignore-certificate-errors'],
      baseURL: (node) => `https://${HOST}:${node.port}`,
    });
    ({ alice, bob } = world);
    for (const p of [alice.page, bob.page]) p.on('websocket', (ws) => sockets.push(ws.url()));
  });
  after(() => world?.close());

  it('serves the page as a secure context with HSTS', async () => {
    assert.ok(world.node.fingerprint, 'the node printed its certificate fingerprint');
    const response = await alice.page.goto('/');
    assert.equal(response.status(), 200);
    assert.match(response.headers()['strict-transport-security'] ?? '', /^max-age=\d+/);
    const page = await alice.page.evaluate(() => ({
      protocol: location.protocol, secure: window.isSecureContext, media: !!navigator.mediaDevices,
    }));
    assert.deepEqual(page, { protocol: 'https:', secure: true, media: true });
  });

  it('registers two people whose WebSockets are wss://', async () => {
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    await eventually(async () => sockets.length >= 2, { what: 'both WebSockets open' });
    for (const url of sockets) assert.match(url, new RegExp(`^wss://${HOST}:\\d+/ws`));
  });

  it('both join a voice channel and hear each other', async () => {
    await createRoomInUi(alice.page, 'Secure hangout', { kind: 'voice' });
    const code = await inviteCode(alice.page);
    await joinByCodeInUi(bob.page, code, 'Secure hangout');
    for (const p of [alice.page, bob.page]) {
      await panel(p).getByRole('button', { name: 'Join voice channel' }).click();
      await panel(p).getByText('Voice connected').waitFor({ timeout: 20_000 });
    }
    await assertReceivingAudio(alice.page, 'alice');
    await assertReceivingAudio(bob.page, 'bob');
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });
});
