// The node is killed with SIGKILL and restarted on the same data dir and port: both pages say
// they are offline, reconnect by themselves, and end with the same messages, each once —
// including a message written while offline (queued, then sent with its nonce) and messages
// posted while one page was still cut off (replayed on room:join with `since`).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  eventually, messageIds, messageTexts, registerInUi, rest, restLogin, sendInUi, shot, startNode,
  startWorld,
} from '../lib/harness.js';

const conn = (page) => page.evaluate(() => document.body.dataset.conn);

describe('kill -9 and restart of the node', { timeout: 180_000 }, () => {
  let world; let erin; let frank; let roomId;

  before(async () => {
    // The node is restarted half-way: world.node is whichever runs now (world.close() ends it).
    world = await startWorld('restart', { nodeLabel: 'restart-1', people: ['erin', 'frank'] });
    ({ erin, frank } = world);
  });
  after(() => world?.close());

  it('sets up two people in one room', async () => {
    await registerInUi(erin.page, 'erin');
    await registerInUi(frank.page, 'frank');
    await erin.page.getByRole('button', { name: 'Create a room' }).first().click();
    const dialog = erin.page.getByRole('dialog', { name: 'Create a room' });
    await dialog.getByLabel('Room name').fill('Ops');
    await dialog.getByRole('button', { name: 'Create room' }).click();
    await erin.page.getByRole('heading', { name: 'Ops', level: 1 }).waitFor();
    roomId = new URL(erin.page.url()).pathname.split('/').pop();
    const code = (await erin.page.locator('.invite-code').textContent()).trim();
    await frank.page.getByLabel('Have an invite code?').fill(code);
    await frank.page.getByRole('button', { name: 'Join', exact: true }).click();
    await frank.page.getByRole('heading', { name: 'Ops', level: 1 }).waitFor();
    await sendInUi(erin.page, 'before 1');
    await eventually(async () => (await messageTexts(frank.page)).includes('before 1'), { what: 'before 1' });
    await sendInUi(frank.page, 'before 2');
    await eventually(async () => (await messageTexts(erin.page)).includes('before 2'), { what: 'before 2' });
  });

  it('shows offline, queues what is written, and comes back with nothing lost or doubled', async () => {
    const { port } = world.node;
    await world.node.kill9();
    for (const p of [erin.page, frank.page]) {
      await eventually(async () => (await conn(p)) !== 'online', { what: 'offline state' });
      await p.getByText('You are offline.').waitFor();
    }
    // Written while the node is down: shown at once, marked as waiting.
    await sendInUi(erin.page, 'written while offline');
    await erin.page.locator('li.msg.pending', { hasText: 'written while offline' }).waitFor();
    await shot(erin.page, 'offline');

    // Keep Erin cut off after the restart, so she misses messages and must get them replayed.
    await erin.context.setOffline(true);
    world.node = await startNode(world.dir, { port, label: 'restart-2' });
    assert.equal(world.node.port, port);

    await eventually(async () => (await conn(frank.page)) === 'online', { timeout: 30_000, what: 'frank online' });
    await sendInUi(frank.page, 'after restart 1');
    await sendInUi(frank.page, 'after restart 2');
    await eventually(async () => (await frank.page.locator('li.msg.pending').count()) === 0, { what: 'frank acked' });
    assert.notEqual(await conn(erin.page), 'online', 'erin missed those live');

    await erin.context.setOffline(false);
    await eventually(async () => (await conn(erin.page)) === 'online', { timeout: 30_000, what: 'erin online' });
    await erin.page.getByText('Back online.').waitFor();
    await sendInUi(frank.page, 'after reconnect');
    await sendInUi(erin.page, 'erin after reconnect');

    const expected = ['before 1', 'before 2', 'after restart 1', 'after restart 2', 'written while offline',
      'after reconnect', 'erin after reconnect'];
    for (const p of [erin.page, frank.page]) {
      await eventually(async () => {
        const texts = await messageTexts(p);
        return [...texts].sort().join('|') === [...expected].sort().join('|');
      }, { timeout: 20_000, what: 'every message exactly once' });
      assert.equal(await p.locator('li.msg.pending').count(), 0);
      const ids = await messageIds(p);
      assert.equal(new Set(ids).size, ids.length, 'no id twice');
    }
    assert.deepEqual(await messageTexts(erin.page), await messageTexts(frank.page), 'same order for both');

    // The server holds each one once too (the queued send was not duplicated).
    const { token } = await restLogin(world.node.url, 'erin');
    const history = await rest(world.node.url, 'GET', `/rooms/${roomId}/messages?limit=100`, { token });
    // Joins are logged as system messages (shown as notices, not message rows).
    const stored = history.body.data.filter((m) => m.type !== 'system').map((m) => m.content).reverse();
    assert.deepEqual(stored, await messageTexts(erin.page));
    assert.deepEqual([...erin.errors, ...frank.errors], []);
  });
});
