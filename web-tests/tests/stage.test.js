// A stage between a host (the room's creator) and a listener, with Chromium's fake
// microphone: the listener raises a hand, the host sees the queue and promotes them, the
// listener becomes a speaker on both pages and the host then hears them; demote, and the host
// ends the stage. Screenshot: the stage with the hand queue.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  assertReceivingAudio, createRoomInUi, eventually, inboundAudioPackets, inviteCode, joinByCodeInUi,
  registerInUi, shot, startWorld,
} from '../lib/harness.js';

const panel = (page) => page.locator('.stage-panel');
const group = (page, role) => panel(page).locator(`.stage-group[data-role="${role}"]`);
const names = (loc) => loc.locator('.voice-name-text').allTextContents();

describe('a stage', { timeout: 180_000 }, () => {
  let world; let host; let guest;

  before(async () => {
    world = await startWorld('stage', { media: true, people: ['hana', 'leo'] });
    ({ hana: host, leo: guest } = world);
  });
  after(() => world?.close());

  it('a host and a listener join', async () => {
    await registerInUi(host.page, 'hana');
    await registerInUi(guest.page, 'leo');
    await createRoomInUi(host.page, 'Town Hall', { kind: 'stage', description: 'Monthly all-hands' });
    const code = await inviteCode(host.page);
    await joinByCodeInUi(guest.page, code, 'Town Hall');
    await host.page.getByRole('button', { name: 'Join stage' }).click();
    await panel(host.page).getByText(/Voice connected · you are a host/).waitFor({ timeout: 20_000 });
    await guest.page.getByRole('button', { name: 'Join stage' }).click();
    await panel(guest.page).getByText(/Voice connected · you are a listener/).waitFor({ timeout: 20_000 });
    for (const p of [host.page, guest.page]) {
      await eventually(async () => (await names(group(p, 'host'))).join() === 'hana'
        && (await names(group(p, 'listener'))).join() === 'leo', { what: 'roles' });
    }
    // A listener has no mute button and no host controls.
    assert.equal(await panel(guest.page).getByRole('button', { name: 'Mute microphone' }).count(), 0);
    assert.equal(await panel(guest.page).getByRole('button', { name: 'End stage' }).count(), 0);
    // The listener hears the host.
    await assertReceivingAudio(guest.page, 'listener');
  });

  it('the listener raises a hand; the host sees the queue and promotes them', async () => {
    await panel(guest.page).getByRole('button', { name: 'Raise hand' }).click();
    const queue = panel(host.page).getByRole('region', { name: 'Raised hands' });
    await queue.locator('li.hand', { hasText: 'leo' }).waitFor();
    assert.equal(await panel(guest.page).getByRole('button', { name: 'Lower hand' }).getAttribute('aria-pressed'), 'true');
    await host.page.mouse.move(5, 5);
    await shot(host.page, 'stage-hand-queue');
    const before = await inboundAudioPackets(host.page);
    await queue.getByRole('button', { name: 'Promote leo to speaker' }).click();
    for (const p of [host.page, guest.page]) {
      await eventually(async () => (await names(group(p, 'speaker'))).join() === 'leo'
        && (await group(p, 'listener').count()) === 0, { what: 'leo is a speaker' });
    }
    await panel(guest.page).getByText(/you are a speaker/).waitFor();
    assert.equal(await queue.count(), 0, 'the queue is empty');
    assert.equal(await panel(guest.page).getByRole('button', { name: /hand/ }).count(), 0);
    await panel(guest.page).getByRole('button', { name: 'Mute microphone' }).waitFor();
    // Now the host hears the new speaker.
    await eventually(async () => (await inboundAudioPackets(host.page)) > Math.max(before, 0) + 20,
      { timeout: 15_000, what: 'host receives the speaker' });
    // The chat logs it.
    await host.page.locator('.sysmsg', { hasText: 'leo was invited to speak' }).waitFor();
  });

  it('the host demotes, then ends the stage', async () => {
    await panel(host.page).getByRole('button', { name: 'Move leo to the audience' }).click();
    for (const p of [host.page, guest.page]) {
      await eventually(async () => (await names(group(p, 'listener'))).join() === 'leo', { what: 'leo listens again' });
    }
    await panel(host.page).getByRole('button', { name: 'End stage' }).click();
    await host.page.getByRole('dialog', { name: 'End the stage' }).getByRole('button', { name: 'End stage' }).click();
    for (const p of [host.page, guest.page]) {
      await panel(p).getByRole('button', { name: 'Join stage' }).waitFor();
      assert.equal(await inboundAudioPackets(p), -1);
    }
    await guest.page.locator('.toast', { hasText: 'The stage has ended.' }).waitFor();
    assert.deepEqual([...host.errors, ...guest.errors], []);
  });
});
