// Scrolling back through 200 messages of history (seeded over REST), a reload that keeps the
// session, and a silent token refresh when the stored access token is refused.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  eventually, messageIds, messageTexts, rest, restLogin, sendInUi, startWorld,
} from '../lib/harness.js';

const COUNT = 200;
const label = (i) => `history message ${String(i).padStart(3, '0')}`;

describe('history and sessions', { timeout: 180_000 }, () => {
  let world; let node; let dana; let roomId;

  before(async () => {
    world = await startWorld('history', { people: ['dana'] });
    ({ node, dana } = world);
    const { token } = await restLogin(node.url, 'dana');
    const room = await rest(node.url, 'POST', '/rooms', { token, body: { name: 'Archive', description: 'Lots of history' } });
    roomId = room.body.data.id;
    for (let i = 1; i <= COUNT; i++) {
      const r = await rest(node.url, 'POST', '/messages', {
        token, body: { roomId, content: label(i), nonce: `seed-${i}` },
      });
      assert.equal(r.status, 201);
    }
  });
  after(() => world?.close());

  it('signs in and opens a room it is already a member of from a link', async () => {
    const { page } = dana;
    await page.goto(`/rooms/${roomId}`);
    // Signed out: the sign-in screen, then back to the room asked for.
    await page.getByLabel('Email').fill('dana@example.com');
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await eventually(async () => /do not match/.test(await page.locator('.form-error').textContent()),
      { what: 'bad credentials message' });
    await page.getByLabel('Password').fill('password123');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Archive', level: 1 }).waitFor();
    assert.equal(new URL(page.url()).pathname, `/rooms/${roomId}`);
    await eventually(async () => (await messageTexts(page)).at(-1) === label(COUNT), { what: 'newest message' });
    const first = await messageTexts(page);
    assert.ok(first.length < COUNT, `only a page is loaded at first (${first.length})`);
  });

  it(`scrolls back through all ${COUNT} messages, in order, none twice`, async () => {
    const { page } = dana;
    const scroller = page.locator('.messages');
    await eventually(async () => {
      await scroller.evaluate((el) => { el.scrollTop = 0; });
      return (await page.locator('.room-start').count()) === 1;
    }, { timeout: 30_000, interval: 300, what: 'the start of the room' });
    const texts = await messageTexts(page);
    assert.deepEqual(texts, Array.from({ length: COUNT }, (_, i) => label(i + 1)));
    const ids = await messageIds(page);
    assert.equal(new Set(ids).size, COUNT);
    const sorted = [...ids].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
    assert.deepEqual(ids, sorted);
    // The reading position stayed near the top (history was prepended above it).
    assert.ok(await scroller.evaluate((el) => el.scrollTop < el.scrollHeight / 2));
  });

  it('keeps the session across a reload', async () => {
    const { page } = dana;
    await page.reload();
    await page.getByRole('heading', { name: 'Archive', level: 1 }).waitFor();
    await eventually(async () => (await messageTexts(page)).at(-1) === label(COUNT), { what: 'history after reload' });
    await eventually(() => page.evaluate(() => document.body.dataset.conn === 'online'), { what: 'online' });
    assert.equal(await page.getByRole('button', { name: 'Sign in' }).count(), 0);
  });

  it('renews a refused access token without the user noticing (and stores the rotated refresh token)', async () => {
    const { page } = dana;
    const before = await page.evaluate(() => JSON.parse(localStorage.getItem('vf.session')));
    // The server refuses this token (401) although the client believes it is still good.
    await page.evaluate(() => {
      const s = JSON.parse(localStorage.getItem('vf.session'));
      s.token = 'not.a.valid-token';
      s.expiresAt = Date.now() + 10 * 60_000;
      localStorage.setItem('vf.session', JSON.stringify(s));
    });
    await page.reload();
    await page.getByRole('heading', { name: 'Archive', level: 1 }).waitFor();
    await eventually(async () => (await messageTexts(page)).at(-1) === label(COUNT), { what: 'history with a renewed token' });
    await eventually(() => page.evaluate(() => document.body.dataset.conn === 'online'), { what: 'online again' });
    const after_ = await page.evaluate(() => JSON.parse(localStorage.getItem('vf.session')));
    assert.notEqual(after_.refreshToken, before.refreshToken, 'the rotated refresh token is stored');
    assert.notEqual(after_.token, 'not.a.valid-token');
    await sendInUi(page, 'still here');
    await eventually(async () => (await messageTexts(page)).at(-1) === 'still here', { what: 'sent after refresh' });
    await eventually(async () => (await page.locator('li.msg.pending').count()) === 0, { what: 'acked' });
  });

  it('signs out', async () => {
    const { page } = dana;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Welcome back!' }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('vf.session')), null);
    await page.reload();
    await page.getByRole('heading', { name: 'Welcome back!' }).waitFor();
    assert.deepEqual(dana.errors, []);
  });
});
