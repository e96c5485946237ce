// Message search in the web client: the header's search box finds a message of another room,
// deep in its history; choosing the result opens that room, pages back to the message and
// shows it highlighted.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  createRoomInUi, eventually, registerInUi, rest, restLogin, sendInUi, shot, startWorld,
} from '../lib/harness.js';

const FILLER = 120;

describe('message search', { timeout: 180_000 }, () => {
  let world; let node; let erin;

  before(async () => {
    // The index commits every 50 ms: results show up as soon as the test looks.
    world = await startWorld('search', { people: ['erin'], toml: '[search]\ncommit_interval_ms = 50\n' });
    ({ node, erin } = world);
  });
  after(() => world?.close());

  it('finds a message of another room and jumps to it, highlighted', async () => {
    const { page } = erin;
    await registerInUi(page, 'erin');
    const lobby = await createRoomInUi(page, 'Lobby');
    await sendInUi(page, 'where did I put that map?');

    // Another room, with the message far back in its history (not in the first page).
    const { token } = await restLogin(node.url, 'erin');
    const created = await rest(node.url, 'POST', '/rooms', { token, body: { name: 'Archive' } });
    const archive = created.body.data.id;
    const post = async (content, nonce) => {
      const r = await rest(node.url, 'POST', '/messages', { token, body: { roomId: archive, content, nonce } });
      assert.equal(r.status, 201);
      return r.body.data.message.id;
    };
    const target = await post('the hidden treasure map is under the old oak', 'target');
    for (let i = 1; i <= FILLER; i++) await post(`filler message ${i}`, `filler-${i}`);
    await eventually(async () => {
      const r = await rest(node.url, 'GET', '/search?q=treasure', { token });
      return r.body?.data?.length === 1;
    }, { what: 'the message indexed' });

    assert.equal(new URL(page.url()).pathname, `/rooms/${lobby}`);
    const box = page.getByRole('searchbox', { name: 'Search messages' });
    await box.fill('"treasure map"');
    await box.press('Enter');
    const result = page.locator('.search-result');
    await result.first().waitFor();
    assert.equal(await result.count(), 1);
    assert.equal(await result.locator('.search-room').textContent(), '#Archive');
    assert.equal(await result.locator('.search-author').textContent(), 'erin');
    assert.deepEqual(await result.locator('mark').allTextContents(), ['treasure', 'map']);
    await shot(page, 'search-results');

    await result.click();
    await eventually(async () => new URL(page.url()).pathname === `/rooms/${archive}`, { what: 'the room opened' });
    await page.getByRole('heading', { name: 'Archive', level: 1 }).waitFor();
    const row = page.locator(`.message-list li.msg.search-target[data-message-id="${target}"]`);
    await row.waitFor({ timeout: 30_000 });
    assert.match(await row.locator('.msg-content').textContent(), /hidden treasure map/);
    await eventually(() => row.isVisible(), { what: 'the message in view' });
    const inView = () => row.evaluate((li) => {
      const box = li.getBoundingClientRect();
      const list = li.closest('.messages').getBoundingClientRect();
      return box.top >= list.top && box.bottom <= list.bottom;
    });
    await shot(page, 'search-jump');
    await eventually(inView, { what: 'the message scrolled into view' });
    // Only one message is marked.
    assert.equal(await page.locator('.message-list li.search-target').count(), 1);
    assert.deepEqual(erin.errors, []);
  });
});
