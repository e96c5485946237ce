// Blocking in the web client: a blocked person's messages are collapsed to "Blocked message —
// Show" (from GET /users/me/blocks at start, and live after Block in the member list);
// Unblock shows them again.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { eventually, rest, restLogin, startWorld } from '../lib/harness.js';

describe('blocking', { timeout: 120_000 }, () => {
  let world; let node; let erin; let roomId; let erinToken; let fred;

  before(async () => {
    world = await startWorld('blocks', { people: ['erin'] });
    ({ node, erin } = world);
    const me = await restLogin(node.url, 'erin');
    erinToken = me.token;
    fred = await restLogin(node.url, 'fred');
    const room = await rest(node.url, 'POST', '/rooms', { token: erinToken, body: { name: 'Plaza' } });
    roomId = room.body.data.id;
    const join = await rest(node.url, 'POST', `/rooms/${room.body.data.joinCode}/join`, { token: fred.token, body: {} });
    assert.equal(join.status, 200);
    const sent = await rest(node.url, 'POST', '/messages', { token: fred.token, body: { roomId, content: 'hello from fred' } });
    assert.equal(sent.status, 201);
    const blocked = await rest(node.url, 'PUT', `/users/me/blocks/${fred.user.id}`, { token: erinToken });
    assert.equal(blocked.status, 200);
  });
  after(() => world?.close());

  it('collapses a blocked person\'s messages and shows them on request', async () => {
    const { page } = erin;
    await page.goto('/login');
    await page.getByLabel('Email').fill('erin@example.com');
    await page.getByLabel('Password').fill('password123');
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Navigating before the sign-in finishes would abort it and land back on /login.
    await page.waitForURL((url) => url.pathname !== '/login');
    await page.goto(`/rooms/${roomId}`);
    await page.getByRole('heading', { name: 'Plaza', level: 1 }).waitFor();
    const row = page.locator('.message-list li.msg.blocked');
    await row.waitFor();
    assert.equal(await page.locator('.msg-content', { hasText: 'hello from fred' }).count(), 0, 'the text is hidden');
    await row.getByRole('button', { name: 'Show' }).click();
    await page.locator('.msg-content', { hasText: 'hello from fred' }).waitFor();
  });

  it('unblocks from the member list, and a live message from fred shows', async () => {
    const { page } = erin;
    await page.getByRole('button', { name: 'Unblock fred' }).click();
    await eventually(async () => (await rest(node.url, 'GET', '/users/me/blocks', { token: erinToken })).body.data.length === 0,
      { what: 'the block lifted' });
    await rest(node.url, 'POST', '/messages', { token: fred.token, body: { roomId, content: 'second from fred' } });
    await page.locator('.msg-content', { hasText: 'second from fred' }).waitFor();
    assert.equal(await page.locator('.message-list li.msg.blocked').count(), 0);
    assert.deepEqual(erin.errors, []);
  });
});
