// A voice channel between two browser contexts with Chromium's fake microphone (a beeping
// tone): both join through the voice panel, each receives the other's audio from the node's
// SFU (inbound-rtp packets keep increasing in the page's RTCPeerConnection stats), speaking
// rings follow the fake microphone's beeps, a mute and a deafen show as icons on the other
// side, leaving works, a page opened later sees who is in the channel, and two joins at the same instant still connect both ways. Screenshot: the voice panel with
// two participants. Chromium gets transport-wide congestion feedback on what it sends.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  assertReceivingAudio, createRoomInUi, eventually, inboundAudioPackets, inviteCode, joinByCodeInUi,
  registerInUi, shot, startWorld,
} from '../lib/harness.js';

const panel = (page) => page.locator('.voice-panel');
const tile = (page, name) => panel(page).locator('li.voice-tile', { hasText: name });

describe('a voice channel', { timeout: 180_000 }, () => {
  let world; let alice; let bob;

  before(async () => {
    world = await startWorld('voice', { media: true, people: ['alice', 'bob'] });
    ({ alice, bob } = world);
  });
  after(() => world?.close());

  it('creates a voice channel that both are in', async () => {
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    await createRoomInUi(alice.page, 'Hangout', { kind: 'voice', description: 'Drop in any time' });
    const code = await inviteCode(alice.page);
    await joinByCodeInUi(bob.page, code, 'Hangout');
    // The sidebar lists it as a voice channel.
    await bob.page.locator('#side-voice').waitFor();
    await bob.page.getByRole('link', { name: /Hangout/ }).waitFor();
  });

  it('both join and hear each other', async () => {
    await alice.page.getByRole('button', { name: 'Join voice channel' }).click();
    await panel(alice.page).getByText('Voice connected').waitFor({ timeout: 20_000 });
    // Bob, not in the channel yet, sees Alice in it (panel and sidebar).
    await tile(bob.page, 'alice').waitFor();
    await bob.page.locator('.side-voice-member', { hasText: 'alice' }).waitFor();

    await bob.page.getByRole('button', { name: 'Join voice channel' }).click();
    await panel(bob.page).getByText('Voice connected').waitFor({ timeout: 20_000 });
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => (await panel(p).locator('li.voice-tile').count()) === 2, { what: 'two tiles' });
    }
    await assertReceivingAudio(alice.page, 'alice');
    await assertReceivingAudio(bob.page, 'bob');
    // Each plays the other in an <audio autoplay> element.
    for (const p of [alice.page, bob.page]) {
      assert.equal(await p.locator('#voice-audio audio').count(), 1);
    }
    // The self footer has the voice controls too.
    await alice.page.locator('.self-voice', { hasText: 'Hangout' }).waitFor();
  });

  it('gives the browsers transport-wide congestion feedback on what they send', async () => {
    // The server's answer negotiated the transport-wide sequence number, so Chromium numbers
    // every packet it sends; the node reports their arrivals back every 100 ms (its send-side
    // estimate runs on that).
    const sdp = await alice.page.evaluate(() => window.__voiceflow.voicePc.remoteDescription.sdp);
    assert.match(sdp, /a=extmap:\d+ http:\/\/www\.ietf\.org\/id\/draft-holmer-rmcat-transport-wide-cc-extensions-01/);
    assert.match(sdp, /a=rtcp-fb:111 transport-cc/);
    const sent = async () => {
      const text = await (await fetch(`${world.node.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('voiceflow_voice_twcc_feedback_total'));
      return Number(line?.split(' ').pop() ?? 0);
    };
    const before = await sent();
    await eventually(async () => (await sent()) >= before + 20, { what: 'transport-wide feedback sent' });
  });

  it('shows a speaking ring on whoever the server hears speaking', async () => {
    // The fake microphone beeps; the SFU reads the RFC 6464 audio levels of Alice's packets and
    // sends voice:state {speaking}: a green ring on her tile and in the sidebar, at Bob's.
    await eventually(async () => (await tile(bob.page, 'alice').getAttribute('data-speaking')) === 'true',
      { timeout: 10_000, what: 'alice speaking at bob' });
    await bob.page.locator('.side-voice-member.speaking', { hasText: 'alice' }).waitFor();
  });

  it('a mute and a deafen show on the other side', async () => {
    await panel(bob.page).getByRole('button', { name: 'Mute microphone' }).click();
    await tile(alice.page, 'bob').locator('.voice-icon.muted').waitFor();
    assert.match(await tile(alice.page, 'bob').textContent(), /muted/);
    assert.equal(await panel(bob.page).getByRole('button', { name: 'Mute microphone' }).getAttribute('aria-pressed'), 'true');
    // The local track is disabled too.
    assert.equal(await bob.page.evaluate(() => window.__voiceflow.voicePc.getSenders()
      .every((s) => !s.track || s.track.enabled === false)), true);

    await panel(bob.page).getByRole('button', { name: 'Deafen' }).click();
    await tile(alice.page, 'bob').locator('.voice-icon.deafened').waitFor();
    assert.equal(await bob.page.evaluate(() => [...document.querySelectorAll('#voice-audio audio')].every((a) => a.muted)), true);
    await alice.page.mouse.move(5, 5);
    await shot(alice.page, 'voice-panel');

    await panel(bob.page).getByRole('button', { name: 'Deafen' }).click();
    await panel(bob.page).getByRole('button', { name: 'Mute microphone' }).click();
    await eventually(async () => (await tile(alice.page, 'bob').locator('.voice-icon').count()) === 0,
      { what: 'icons gone' });
  });

  it('someone leaving and coming back takes the same section again, and is heard', async () => {
    // Every leg used to be a new SDP section for good: a channel with people coming and going
    // grew everyone's descriptions until answers passed the frame limit. A section left
    // behind now carries the next leg of its kind (with a new SSRC).
    const sections = () => alice.page.evaluate(() => window.__voiceflow.voicePc.remoteDescription.sdp
      .split('\n').filter((l) => l.startsWith('m=')).length);
    const before = await sections();
    for (let round = 0; round < 2; round += 1) {
      await panel(bob.page).getByRole('button', { name: 'Leave voice channel' }).click();
      await eventually(async () => (await panel(alice.page).locator('li.voice-tile').count()) === 1, { what: 'bob gone' });
      await panel(bob.page).getByRole('button', { name: 'Join voice channel' }).click();
      await panel(bob.page).getByText('Voice connected').waitFor({ timeout: 20_000 });
      await eventually(async () => (await panel(alice.page).locator('li.voice-tile').count()) === 2, { what: 'bob back' });
      await assertReceivingAudio(alice.page, 'alice');
      await eventually(async () => (await alice.page.locator('#voice-audio audio').count()) === 1,
        { what: 'one audio element at alice' });
      assert.equal(await sections(), before, `round ${round}`);
    }
  });

  it('leaving closes the connection and updates the other side', async () => {
    await panel(bob.page).getByRole('button', { name: 'Leave voice channel' }).click();
    await eventually(async () => (await panel(alice.page).locator('li.voice-tile').count()) === 1, { what: 'one tile' });
    assert.equal(await inboundAudioPackets(bob.page), -1, 'no connection left');
    await panel(bob.page).getByRole('button', { name: 'Join voice channel' }).waitFor();
    // A page opened now learns who is in the channel from its room:join ack.
    await bob.page.reload();
    await bob.page.locator('.side-voice-member', { hasText: 'alice' }).waitFor({ timeout: 15_000 });
    await tile(bob.page, 'alice').waitFor();
    await panel(bob.page).getByRole('button', { name: 'Join voice channel' }).waitFor();
    await panel(alice.page).getByRole('button', { name: 'Leave voice channel' }).click();
    await eventually(async () => (await panel(bob.page).locator('li.voice-tile').count()) === 0, { what: 'empty channel' });
  });

  it('two people joining at the same instant still hear each other', async () => {
    // Both offers reach the SFU together; if the server's renegotiation trips over that, the
    // client notices the missing stream and joins again (voice.js, self-healing).
    await Promise.all([alice.page, bob.page].map((p) => panel(p).getByRole('button', { name: 'Join voice channel' }).click()));
    await assertReceivingAudio(alice.page, 'alice');
    await assertReceivingAudio(bob.page, 'bob');
    for (const p of [alice.page, bob.page]) {
      await panel(p).getByRole('button', { name: 'Leave voice channel' }).click();
    }
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });
});
