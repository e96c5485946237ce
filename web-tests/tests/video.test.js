// Video in a voice channel between two browser contexts with Chromium's fake camera: Alice
// turns her camera on from the voice panel, Bob's page shows it in her tile and its
// RTCPeerConnection stats show inbound video frames decoded and rising; a screen share (a
// canvas capture stream standing in for getDisplayMedia, which headless Chromium cannot
// capture) is spotlighted above the tiles at Bob's; hiding Bob's tile pauses Alice's camera at
// the server (voice:subscribe) and the frames stop, showing it again resumes them; the camera
// goes off again. Her camera is sent in simulcast layers; bob's client asks for the layer that
// fits her tile's size (voice:subscribe {layer}): shown small he decodes her lowest layer, shown
// large her widest. Her screen share goes out in two layers and bob's large spotlight gets the
// full one. Screenshot: the panel with a camera tile and a screen share. Then, in a channel of
// their own, Alice's Chromium prefers VP9 for what it sends: Bob decodes her VP9 camera, frames
// rising, and both connections negotiated RTX (RFC 4588) with the server (its answer to her,
// its offers to him and his answers).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  assertReceivingAudio, assertVideoFramesRising, createRoomInUi, eventually, inboundVideoFrames, inviteCode,
  joinByCodeInUi, preferVideoCodec, registerInUi, shot, startWorld, videoCodecsInUse,
} from '../lib/harness.js';

const panel = (page) => page.locator('.voice-panel');
const tile = (page, name) => panel(page).locator('li.voice-tile', { hasText: name });


/** The camera layers the page sends: rid → frame width (outbound video with a rid). */
function sentLayers(page) {
  return page.evaluate(async () => {
    const stats = await window.__voiceflow.voicePc.getStats();
    const out = {};
    stats.forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video' && r.rid && r.framesEncoded > 0 && r.frameWidth) out[r.rid] = r.frameWidth;
    });
    return out;
  });
}

/** The widest frame the page decodes now on its inbound video. */
function receivedWidth(page) {
  return page.evaluate(async () => {
    const stats = await window.__voiceflow.voicePc.getStats();
    let w = 0;
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') w = Math.max(w, r.frameWidth || 0);
    });
    return w;
  });
}

/** The page's view of the video (for failure messages). */
function videoDebug(page) {
  return page.evaluate(async () => {
    const voice = window.__voiceflow?.voice;
    const pc = window.__voiceflow?.voicePc;
    if (!voice || !pc) return 'no connection';
    const people = [...(voice.store.voice?.participants.values() || [])]
      .map((p) => `${p.username}:${p.sessionId}:video=${p.video}:screen=${p.screen}`);
    const tr = pc.getTransceivers().map((t) => `${t.mid}:${t.receiver.track.kind}:${t.direction}/${t.currentDirection}`);
    const msids = (pc.remoteDescription?.sdp || '').split(/\r?\n/).filter((l) => l.startsWith('a=msid') || l.startsWith('a=mid') || l.startsWith('m='));
    return `people=[${people}] transceivers=[${tr}] sdp=[${msids.join(' ')}] videos=[${[...document.querySelectorAll('video')].map((v) => v.dataset.track)}] log=[${voice.log.join(' | ')}]`;
  });
}

async function waitOrExplain(page, locator, what) {
  try {
    await locator.waitFor({ timeout: 20_000 });
  } catch (e) {
    throw new Error(`${what}: ${e.message}; ${await videoDebug(page)}`);
  }
}


describe('video in a voice channel', { timeout: 180_000 }, () => {
  let world; let alice; let bob;

  before(async () => {
    world = await startWorld('video', { media: true, people: ['alice', 'bob'] });
    ({ alice, bob } = world);
  });
  after(() => world?.close());

  it('both are in a voice channel', async () => {
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    await createRoomInUi(alice.page, 'Studio', { kind: 'voice' });
    const code = await inviteCode(alice.page);
    await joinByCodeInUi(bob.page, code, 'Studio');
    for (const p of [alice.page, bob.page]) {
      await panel(p).getByRole('button', { name: 'Join voice channel' }).click();
      await panel(p).getByText('Voice connected').waitFor({ timeout: 20_000 });
    }
    await assertReceivingAudio(bob.page, 'bob');
  });

  it("alice's camera shows in her tile at bob's, frames decoded and rising", async () => {
    await panel(alice.page).getByRole('button', { name: 'Camera' }).click();
    await eventually(async () => (await panel(alice.page).getByRole('button', { name: 'Camera' })
      .getAttribute('aria-pressed')) === 'true', { what: 'camera on' });
    // Her own tile mirrors her camera.
    await tile(alice.page, 'alice').locator('video.voice-video.self').waitFor();
    await waitOrExplain(bob.page, tile(bob.page, 'alice').locator('video.voice-video'), "alice's camera at bob's");
    await assertVideoFramesRising(bob.page, 'bob');
    assert.equal(await tile(bob.page, 'alice').evaluate((el) => el.classList.contains('has-video')), true);
    // Her camera goes out in simulcast layers (RIDs q/h/f); the server forwards bob the
    // widest one she sends (no bandwidth limit here), switching up at its keyframe.
    let sent = {};
    await eventually(async () => {
      sent = await sentLayers(alice.page);
      return Object.keys(sent).length >= 2;
    }, { timeout: 20_000, what: `alice sends two simulcast layers or more: ${JSON.stringify(sent)}` });
    // Bob's client asks for the layer that fits the tile's size (voice:subscribe {layer}):
    // shown small he gets her lowest layer, shown large her widest, switched at keyframes.
    let width = 0;
    const showAt = (px) => bob.page.evaluate((w) => {
      const video = document.querySelector('li.voice-tile.has-video video');
      // Its frame is a flex box: the video keeps the width only if it may not shrink.
      Object.assign(video.style, { width: `${w}px`, maxWidth: 'none', flex: 'none' });
    }, px);
    for (const [px, pick, what] of [[120, Math.min, 'lowest'], [1200, Math.max, 'widest']]) {
      await showAt(px);
      await eventually(async () => {
        sent = await sentLayers(alice.page);
        width = await receivedWidth(bob.page);
        return Object.keys(sent).length >= 2 && width === pick(...Object.values(sent));
      }, { timeout: 20_000, what: `shown ${px} px wide, bob decodes alice's ${what} layer: sent ${JSON.stringify(sent)}, decoded ${width}` });
    }
    assert.ok(width > Math.min(...Object.values(sent)), `not the lowest layer: ${width}`);
    await bob.page.evaluate(() => {
      Object.assign(document.querySelector('li.voice-tile.has-video video').style, { width: '', maxWidth: '', flex: '' });
    });
  });

  it('a screen share is spotlighted at the other side', async () => {
    await alice.page.evaluate(() => {
      // Headless Chromium has no screen to capture: a moving canvas stands in.
      navigator.mediaDevices.getDisplayMedia = async () => {
        const canvas = Object.assign(document.createElement('canvas'), { width: 640, height: 360 });
        const ctx = canvas.getContext('2d');
        let x = 0;
        setInterval(() => {
          ctx.fillStyle = '#224'; ctx.fillRect(0, 0, 640, 360);
          ctx.fillStyle = '#fc4'; ctx.fillRect(x = (x + 8) % 600, 150, 40, 40);
        }, 40);
        return canvas.captureStream(25);
      };
    });
    await panel(alice.page).getByRole('button', { name: 'Share screen' }).click();
    const spot = panel(bob.page).locator('.voice-spotlight', { hasText: 'alice is sharing their screen' });
    await waitOrExplain(bob.page, spot.locator('video'), 'the spotlight');
    await eventually(async () => spot.locator('video').evaluate((v) => v.videoWidth > 0),
      { timeout: 15_000, what: 'the screen share plays' });
    // It goes out in two simulcast layers (the third section of her connection: microphone,
    // camera, screen), and bob, whose spotlight is large, is forwarded the full one.
    let layers = {};
    await eventually(async () => {
      layers = await alice.page.evaluate(async () => {
        const screen = window.__voiceflow.voicePc.getTransceivers()[2];
        const out = {};
        (await screen.sender.getStats()).forEach((r) => {
          if (r.type === 'outbound-rtp' && r.rid && r.framesEncoded > 0) out[r.rid] = r.frameWidth;
        });
        return out;
      });
      return Object.keys(layers).length === 2;
    }, { timeout: 20_000, what: `alice's screen in two layers: ${JSON.stringify(layers)}` });
    assert.deepEqual(layers, { h: 320, f: 640 });
    await eventually(async () => (await spot.locator('video').evaluate((v) => v.videoWidth)) === 640,
      { timeout: 20_000, what: "bob gets the screen's full layer" });
    await bob.page.mouse.move(5, 5);
    await shot(bob.page, 'video-panel');
    await panel(alice.page).getByRole('button', { name: 'Share screen' }).click();
    await eventually(async () => (await panel(bob.page).locator('.voice-spotlight').count()) === 0,
      { timeout: 15_000, what: 'spotlight gone' });
  });

  it("hiding the tile pauses alice's camera at the server; showing it resumes", async () => {
    // The screen share's track stays negotiated but idle; only the camera's frames count now.
    await bob.page.evaluate(() => {
      document.querySelector('li.voice-tile.has-video video').style.display = 'none';
    });
    await eventually(async () => {
      const a = await inboundVideoFrames(bob.page);
      await new Promise((r) => setTimeout(r, 1000));
      return (await inboundVideoFrames(bob.page)) === a;
    }, { timeout: 15_000, what: 'frames stop while hidden' });
    await bob.page.evaluate(() => {
      document.querySelector('li.voice-tile.has-video video').style.display = '';
    });
    await assertVideoFramesRising(bob.page, 'bob after resuming');
  });

  it('the camera goes off again', async () => {
    await panel(alice.page).getByRole('button', { name: 'Camera' }).click();
    await eventually(async () => (await tile(bob.page, 'alice').locator('video').count()) === 0,
      { timeout: 15_000, what: 'tile back to the avatar' });
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });
});

/** The payload type `sdp` maps `codec` (`VP9`) to, and the RTX payload types repairing it. */
function rtxFor(sdp, codec) {
  const pt = new RegExp(`a=rtpmap:(\\d+) ${codec}/90000`).exec(sdp)?.[1];
  const rtx = [...sdp.matchAll(/a=fmtp:(\d+) apt=(\d+)/g)]
    .filter((m) => m[2] === pt && new RegExp(`a=rtpmap:${m[1]} rtx/90000`).test(sdp))
    .map((m) => m[1]);
  return { pt, rtx };
}

describe('a VP9 camera, with RTX', { timeout: 180_000 }, () => {
  let world; let alice; let bob;

  before(async () => {
    world = await startWorld('video-vp9', { media: true, people: ['alice', 'bob'] });
    ({ alice, bob } = world);
  });
  after(() => world?.close());

  it('bob decodes the VP9 camera alice publishes; both negotiated RTX', async () => {
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    await createRoomInUi(alice.page, 'Codecs', { kind: 'voice' });
    const code = await inviteCode(alice.page);
    await joinByCodeInUi(bob.page, code, 'Codecs');
    await preferVideoCodec(alice.page, 'video/VP9');
    for (const p of [alice.page, bob.page]) {
      await panel(p).getByRole('button', { name: 'Join voice channel' }).click();
      await panel(p).getByText('Voice connected').waitFor({ timeout: 20_000 });
    }
    await panel(alice.page).getByRole('button', { name: 'Camera' }).click();
    await waitOrExplain(bob.page, tile(bob.page, 'alice').locator('video.voice-video'), "alice's VP9 camera at bob's");
    await assertVideoFramesRising(bob.page, 'bob decoding VP9');
    let codecs = {};
    await eventually(async () => {
      codecs = { alice: await videoCodecsInUse(alice.page), bob: await videoCodecsInUse(bob.page) };
      return codecs.alice.outbound.includes('video/VP9') && codecs.bob.inbound.includes('video/VP9');
    }, { timeout: 20_000, what: `alice sends VP9 and bob decodes it: ${JSON.stringify(codecs)}` });
    assert.ok(codecs.alice.outbound.every((m) => m === 'video/VP9'), JSON.stringify(codecs));

    // The server's answer to alice offers RTX for VP9 (so her retransmissions come on their
    // own stream); its offers to bob announce each video leg's RTX stream, and he took them.
    const sdp = (page, which) => page.evaluate((w) => window.__voiceflow.voicePc[w].sdp, which);
    const answer = rtxFor(await sdp(alice.page, 'remoteDescription'), 'VP9');
    assert.ok(answer.pt && answer.rtx.length > 0, `rtx for VP9 in the server's answer: ${JSON.stringify(answer)}`);
    const offered = await sdp(bob.page, 'remoteDescription');
    assert.match(offered, /a=ssrc-group:FID \d+ \d+/, "the server's offer names the legs' RTX streams");
    const answered = rtxFor(await sdp(bob.page, 'localDescription'), 'VP9');
    assert.ok(answered.rtx.length > 0, `bob's answer keeps RTX for VP9: ${JSON.stringify(answered)}`);
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });
});
