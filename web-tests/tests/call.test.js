// Direct messages and 1:1 calls between two browser contexts with Chromium's fake microphone:
// Alice opens a DM with Bob from the member list and calls; Bob's page shows the incoming-call
// dialog (focus on Accept); he accepts; both reach "connected" and receive each other's audio;
// Alice hangs up, both see it end and the DM shows the call's system message with its
// duration. In the call, Alice turns her camera on from the call bar: Bob's bar shows it with
// frames decoded and rising, hers shows her own mirrored; she turns it off and it goes at both.
// Then: a declined call tells the caller "declined", a cancelled one stops ringing.
// Screenshot: the incoming call dialog, the in-call bar, the bar with video.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  assertReceivingAudio, assertVideoFramesRising, createRoomInUi, eventually, inboundAudioPackets, inviteCode,
  joinByCodeInUi, registerInUi, rest, restLogin, shot, startWorld,
} from '../lib/harness.js';

const bar = (page) => page.locator('.call-bar');
const incoming = (page) => page.getByRole('dialog', { name: /is calling/ });

describe('direct messages and calls', { timeout: 180_000 }, () => {
  let world; let alice; let bob; let dmId; let supported = true;

  before(async () => {
    world = await startWorld('call', { media: true, people: ['alice', 'bob'] });
    ({ alice, bob } = world);
    // A node without direct messages (before the server part landed) has no POST /dms: 404.
    // With it, a body without userId is a validation error.
    const { token } = await restLogin(world.node.url, 'probe');
    const r = await rest(world.node.url, 'POST', '/dms', { token, body: {} });
    supported = r.status !== 404;
  });
  after(() => world?.close());

  it('opens a DM from the member list', async (t) => {
    if (!supported) return t.skip('this node has no direct messages');
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    await createRoomInUi(alice.page, 'Team');
    await joinByCodeInUi(bob.page, await inviteCode(alice.page), 'Team');
    const member = alice.page.locator('#members-panel li.member', { hasText: 'bob' });
    await member.waitFor();
    await member.hover();
    await member.getByRole('button', { name: 'Message bob' }).click();
    await alice.page.getByRole('heading', { name: 'bob', level: 1 }).waitFor();
    dmId = new URL(alice.page.url()).pathname.split('/').pop();
    await alice.page.getByRole('list', { name: 'Direct messages' }).getByRole('link', { name: /^bob/ }).waitFor();
    const box = alice.page.getByRole('textbox', { name: 'Message @bob' });
    await box.fill('Got a minute? Calling you.');
    await box.press('Enter');
    return undefined;
  });

  it('calls; the other side accepts; both connect and hear each other', async (t) => {
    if (!supported) return t.skip('this node has no direct messages');
    await alice.page.getByRole('button', { name: 'Call bob' }).click();
    await alice.page.getByRole('dialog', { name: 'Calling bob…' }).waitFor();
    const dialog = incoming(bob.page);
    await dialog.waitFor();
    assert.match(await dialog.textContent(), /alice is calling/);
    assert.equal(await bob.page.evaluate(() => document.activeElement.textContent.trim()), 'Accept');
    await eventually(async () => /Ringing/.test(await alice.page.locator('.call-state').textContent()), { what: 'ringing' });
    await shot(bob.page, 'call-incoming');

    await dialog.getByRole('button', { name: 'Accept' }).click();
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => (await bar(p).getAttribute('data-state')) === 'connected',
        { timeout: 25_000, what: 'connected' });
    }
    assert.equal(await incoming(bob.page).count(), 0, 'the dialog closed');
    assert.equal(new URL(bob.page.url()).pathname, `/rooms/${dmId}`, 'bob is taken to the DM');
    await assertReceivingAudio(alice.page, 'alice');
    await assertReceivingAudio(bob.page, 'bob');
    // The duration runs.
    await eventually(async () => /^0:0[1-9]/.test(await bar(alice.page).locator('.call-duration').textContent()),
      { what: 'duration running' });
    await bob.page.mouse.move(5, 5);
    await shot(bob.page, 'call-connected');
    return undefined;
  });

  it("alice's camera from the call bar reaches bob's bar, decoded; off again, it goes", async (t) => {
    if (!supported) return t.skip('this node has no direct messages');
    const camera = bar(alice.page).getByRole('button', { name: 'Camera' });
    await camera.click();
    await eventually(async () => (await camera.getAttribute('aria-pressed')) === 'true', { what: 'camera on' });
    await bar(alice.page).locator('.call-video.self video.self').waitFor({ timeout: 15_000 });
    const hers = bar(bob.page).locator('.call-video.camera', { hasText: 'alice' });
    await hers.locator('video').waitFor({ timeout: 20_000 });
    await assertVideoFramesRising(bob.page, "bob receiving alice's camera");
    await eventually(async () => hers.locator('video').evaluate((v) => v.videoWidth > 0),
      { timeout: 15_000, what: 'the camera plays' });
    await bob.page.mouse.move(5, 5);
    await shot(bob.page, 'call-video');
    await camera.click();
    await eventually(async () => (await bar(bob.page).locator('.call-video').count()) === 0,
      { timeout: 15_000, what: "alice's camera gone at bob's" });
    await eventually(async () => (await bar(alice.page).locator('.call-video').count()) === 0,
      { what: 'self view gone' });
    return undefined;
  });

  it('hangs up: both see it end and the DM logs the call with its duration', async (t) => {
    if (!supported) return t.skip('this node has no direct messages');
    await bar(alice.page).getByRole('button', { name: 'Hang up' }).click();
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => !(await bar(p).isVisible()), { what: 'call bar gone' });
      await p.locator('.toast', { hasText: /Call ended \(\d+:\d\d\)/ }).waitFor();
      assert.equal(await inboundAudioPackets(p), -1, 'connection closed');
      await p.locator('.sysmsg', { hasText: /called — call lasted \d+:\d\d/ }).waitFor();
    }
    // Bob's sidebar lists the DM under the other person's name.
    await bob.page.getByRole('list', { name: 'Direct messages' }).getByRole('link', { name: /^alice/ }).waitFor();
    return undefined;
  });

  it('a declined call tells the caller', async (t) => {
    if (!supported) return t.skip('this node has no direct messages');
    await alice.page.getByRole('button', { name: 'Call bob' }).click();
    await incoming(bob.page).getByRole('button', { name: 'Decline' }).click();
    await alice.page.locator('.toast', { hasText: 'bob declined the call.' }).waitFor();
    await eventually(async () => (await alice.page.getByRole('dialog', { name: 'Calling bob…' }).count()) === 0,
      { what: 'overlay gone' });
    await alice.page.locator('.sysmsg', { hasText: 'called — declined' }).waitFor();
    return undefined;
  });

  it('a cancelled call stops ringing', async (t) => {
    if (!supported) return t.skip('this node has no direct messages');
    await alice.page.getByRole('button', { name: 'Call bob' }).click();
    await incoming(bob.page).waitFor();
    await alice.page.getByRole('button', { name: 'Cancel call' }).click();
    await eventually(async () => (await incoming(bob.page).count()) === 0, { what: 'ringing stopped' });
    await bob.page.locator('.toast', { hasText: 'alice cancelled the call.' }).waitFor();
    assert.deepEqual([...alice.errors, ...bob.errors], []);
    return undefined;
  });
});
