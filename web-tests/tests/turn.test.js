// A client behind a strict firewall: Bob's Chromium may only use relay candidates
// (iceTransportPolicy 'relay', set through window.__voiceflow before the app loads), so his
// audio goes through the node's embedded TURN server ([voice] turn_enabled), whose address and
// short-lived credential the web client gets from voice:ice_servers before its offer. Both
// hear each other, and Bob's selected candidate pair is a relay one.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  assertReceivingAudio, createRoomInUi, inviteCode, joinByCodeInUi, registerInUi, startWorld,
} from '../lib/harness.js';

const panel = (page) => page.locator('.voice-panel');

/** The local candidate type of the page's selected ICE pair ('host', 'relay'…). */
function selectedLocalCandidateType(page) {
  return page.evaluate(async () => {
    const stats = await window.__voiceflow.voicePc.getStats();
    let pairId = null;
    stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId; });
    let local = null;
    stats.forEach((r) => {
      if (r.type === 'candidate-pair' && (r.id === pairId || (!pairId && r.nominated && r.state === 'succeeded'))) local = r.localCandidateId;
    });
    let type = null;
    stats.forEach((r) => { if (r.id === local) type = r.candidateType; });
    return type;
  });
}

describe('a voice channel through TURN', { timeout: 180_000 }, () => {
  let world; let alice; let bob;

  before(async () => {
    world = await startWorld('turn', {
      media: true,
      people: ['alice', 'bob'],
      toml: '[voice]\nudp_port = 0\nturn_enabled = true\nturn_port = 0\n',
    });
    ({ alice, bob } = world);
    await bob.page.addInitScript(() => { window.__voiceflow = { iceTransportPolicy: 'relay' }; });
  });
  after(() => world?.close());

  it('a relay-only client joins and both hear each other', async () => {
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    await createRoomInUi(alice.page, 'Behind the wall', { kind: 'voice' });
    const code = await inviteCode(alice.page);
    await joinByCodeInUi(bob.page, code, 'Behind the wall');

    await alice.page.getByRole('button', { name: 'Join voice channel' }).click();
    await panel(alice.page).getByText('Voice connected').waitFor({ timeout: 20_000 });
    await bob.page.getByRole('button', { name: 'Join voice channel' }).click();
    await panel(bob.page).getByText('Voice connected').waitFor({ timeout: 30_000 });
    await assertReceivingAudio(bob.page, 'bob over TURN');
    await assertReceivingAudio(alice.page, 'alice from bob over TURN');

    const config = await bob.page.evaluate(() => window.__voiceflow.voicePc.getConfiguration());
    assert.equal(config.iceTransportPolicy, 'relay');
    assert.ok(config.iceServers.some((s) => [].concat(s.urls).some((u) => u.startsWith('turn:'))),
      JSON.stringify(config.iceServers));
    assert.equal(await selectedLocalCandidateType(bob.page), 'relay');
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });
});
