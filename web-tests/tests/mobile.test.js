// A 375 px wide phone screen: the sidebar slides in from the menu button, the member list is
// an overlay, nothing scrolls sideways, chatting works, and the composer keeps its attachment
// buttons (recording without a microphone explains itself).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  eventually, messageTexts, registerInUi, rest, restLogin, sendInUi, shot, startWorld,
} from '../lib/harness.js';

describe('a narrow phone screen', { timeout: 120_000 }, () => {
  let world; let node; let gina;

  before(async () => {
    world = await startWorld('mobile', { people: [{ name: 'gina', width: 375, height: 740 }] });
    ({ node, gina } = world);
  });
  after(() => world?.close());

  const noSidewaysScroll = (page) => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);

  it('signs up and creates a room', async () => {
    const { page } = gina;
    await page.goto('/login');
    await shot(page, 'login-mobile');
    assert.ok(await noSidewaysScroll(page));
    await registerInUi(page, 'gina');
    assert.ok(await noSidewaysScroll(page));
    await page.getByRole('button', { name: 'Create a room' }).first().click();
    const dialog = page.getByRole('dialog', { name: 'Create a room' });
    await dialog.getByLabel('Room name').fill('Weekend Hikes');
    await dialog.getByLabel('Description').fill('Trails, weather and carpools');
    await dialog.getByRole('button', { name: 'Create room' }).click();
    await page.getByRole('heading', { name: 'Weekend Hikes', level: 1 }).waitFor();
  });

  it('chats, with the sidebar and member list tucked away', async () => {
    const { page } = gina;
    const roomId = new URL(page.url()).pathname.split('/').pop();
    // Someone else joins and writes (over REST), so the screen has a conversation.
    const { token } = await restLogin(node.url, 'hank');
    const meta = await rest(node.url, 'GET', `/rooms/${roomId}`, { token });
    await rest(node.url, 'POST', `/rooms/${meta.body.data.joinCode}/join`, { token, body: {} });
    await rest(node.url, 'POST', '/messages', { token, body: { roomId, content: 'Anyone up for the ridge trail on Saturday?' } });
    await eventually(async () => (await messageTexts(page)).length === 1, { what: 'hank\'s message' });
    await sendInUi(page, 'Yes! Leaving at 8 from the station 🚆');
    await sendInUi(page, 'Bring water, it will be hot.');
    await eventually(async () => (await page.locator('li.msg.pending').count()) === 0
      && (await messageTexts(page)).length === 3, { what: 'sent' });

    const sidebar = page.locator('#sidebar');
    assert.equal(await sidebar.isVisible(), false, 'the sidebar is hidden on a phone');
    assert.equal(await page.locator('#members-panel').isVisible(), false, 'members hidden by default');
    assert.ok(await noSidewaysScroll(page));
    await shot(page, 'room-mobile');

    await page.getByRole('button', { name: 'Open room list' }).click();
    await eventually(() => sidebar.isVisible(), { what: 'sidebar open' });
    await page.getByRole('link', { name: /Weekend Hikes/ }).waitFor();
    await page.waitForTimeout(400); // the slide-in transition
    await shot(page, 'sidebar-mobile');
    await page.keyboard.press('Escape');
    await eventually(async () => !(await sidebar.isVisible()), { what: 'sidebar closed' });

    // The composer keeps its attach and record buttons on a phone; without a microphone (this
    // browser has none) recording says why it cannot start.
    await page.getByRole('button', { name: 'Attach a file' }).waitFor();
    await page.getByRole('button', { name: 'Record a voice note' }).click();
    await page.locator('.toast', { hasText: /Microphone access was denied|No microphone was found/ }).waitFor();
    assert.equal(await page.getByRole('group', { name: 'Recording a voice note' }).isVisible(), false);
    assert.ok(await noSidewaysScroll(page));

    await page.getByRole('button', { name: 'Show members' }).click();
    await page.locator('#members-panel').getByText('hank').waitFor();
    await page.getByRole('button', { name: 'Close members' }).click();
    await eventually(async () => !(await page.locator('#members-panel').isVisible()), { what: 'members closed' });
    assert.deepEqual(gina.errors, []);
  });

  it('a voice channel fits too (panel, sidebar section, status picker)', async () => {
    const { page } = gina;
    await page.goto('/rooms');
    await page.getByRole('heading', { name: 'Browse rooms' }).waitFor();
    await page.getByRole('main').getByRole('button', { name: 'Create a room' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a room' });
    await dialog.getByLabel('Room name').fill('Trail Radio');
    await dialog.getByLabel('Room type').selectOption('voice');
    await dialog.getByRole('button', { name: 'Create room' }).click();
    await page.getByRole('heading', { name: 'Trail Radio', level: 1 }).waitFor();
    await page.locator('.voice-panel').getByRole('button', { name: 'Join voice channel' }).waitFor();
    assert.ok(await noSidewaysScroll(page));
    await page.getByRole('button', { name: 'Open room list' }).click();
    await page.locator('#side-voice').waitFor();
    await page.getByLabel('Set your status').selectOption('away');
    await page.keyboard.press('Escape');
    assert.ok(await noSidewaysScroll(page));
    assert.deepEqual(gina.errors, []);
  });
});
