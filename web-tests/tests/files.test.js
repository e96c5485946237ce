// Attachments between two people (two browser contexts) on a node whose upload limit is 96 KB:
// Alice sends a real PNG through the attach button (the tray shows it uploading) and a text
// file by dropping it on the chat; Bob sees the image rendered inline and the file as a link
// with its name and size, and downloading it gives the same bytes. A file over the limit (the
// node announces it in `hello`), pasted into the composer, shows the error in the tray and is
// not even uploaded; a tab whose hello lacks the limit learns it from a 413. A voice note
// recorded from Chromium's fake microphone (WebM/Opus from MediaRecorder) reaches Bob as an
// audio player that loads, knows its duration and plays; Escape throws a recording away.
// Screenshot: the room with an image, a file and a voice note.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { deflateSync } from 'node:zlib';

import {
  createRoomInUi, eventually, inviteCode, joinByCodeInUi, registerInUi, shot, startWorld,
} from '../lib/harness.js';

const LIMIT = 96 * 1024;

/** A real PNG: `width`×`height`, 8-bit RGB, bands of colour. */
function makePng(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // no filter
    for (let x = 0; x < width; x++) {
      // Bands of colour rather than a smooth ramp: a small file (deflate loves runs).
      raw[row + 1 + x * 3] = Math.floor((x / width) * 8) * 32;
      raw[row + 2 + x * 3] = 40 + Math.floor((y / height) * 6) * 30;
      raw[row + 3 + x * 3] = 180;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Hands `files` ({name, type, base64}) to the page as a drop on `selector` or a paste into it. */
function dropOrPaste(page, how, selector, files) {
  return page.evaluate(({ how, selector, files }) => {
    const dt = new DataTransfer();
    for (const f of files) {
      dt.items.add(new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
    }
    const target = document.querySelector(selector);
    if (how === 'paste') {
      target.dispatchEvent(new ClipboardEvent('paste', { bubbles: true, cancelable: true, clipboardData: dt }));
      return null;
    }
    const fire = (type) => target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
    fire('dragenter');
    fire('dragover');
    const overlay = target.closest('.room-chat').dataset.drop === 'on';
    fire('drop');
    return overlay;
  }, { how, selector, files });
}

const msgs = (page) => page.locator('.message-list li.msg:not(.pending)');
const tray = (page) => page.getByRole('list', { name: 'Uploads' });

/** Pastes a 150 KB file, over the limit, into the page's composer. */
async function pasteBig(page) {
  await page.getByRole('textbox', { name: /^Message #/ }).focus();
  await dropOrPaste(page, 'paste', '#composer',
    [{ name: 'big.bin', type: 'application/octet-stream', base64: Buffer.alloc(150 * 1024, 7).toString('base64') }]);
}
const TOO_BIG = '“big.bin” is too large (150 KB): the limit is 96 KB.';

/** Counts the page's upload requests (POST /api/v1/files) from now on: {count, stop()}. */
function countUploads(page) {
  const counter = { count: 0 };
  const onRequest = (req) => {
    if (req.method() === 'POST' && new URL(req.url()).pathname === '/api/v1/files') counter.count++;
  };
  page.on('request', onRequest);
  counter.stop = () => page.off('request', onRequest);
  return counter;
}

describe('attachments', { timeout: 180_000 }, () => {
  let world; let alice; let bob;
  const png = makePng(320, 200);
  const notes = Buffer.from('Agenda\n'.padEnd(1536, 'x.'), 'utf8'); // 1536 bytes: "1.5 KB"

  before(async () => {
    world = await startWorld('files', {
      toml: `[files]\nmax_bytes = ${LIMIT}\n`,
      media: true, // a fake microphone for the voice note
      people: ['alice', 'bob'],
    });
    ({ alice, bob } = world);
  });
  after(() => world?.close());

  it('sets up a room both are in', async () => {
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    await createRoomInUi(alice.page, 'Photo Club', { description: 'Shots and notes' });
    const code = await inviteCode(alice.page);
    await joinByCodeInUi(bob.page, code, 'Photo Club');
  });

  it('sends an image from the attach button; Bob sees it rendered', async () => {
    // Hold the upload for a moment so its progress line can be seen.
    let release;
    let passed;
    const held = new Promise((r) => { release = r; });
    const through = new Promise((r) => { passed = r; });
    await alice.page.route('**/api/v1/files?**', async (route) => {
      await held;
      await route.continue();
      passed();
    });
    const chooser = alice.page.waitForEvent('filechooser');
    await alice.page.getByRole('button', { name: 'Attach a file' }).click();
    await (await chooser).setFiles({ name: 'palette.png', mimeType: 'image/png', buffer: png });
    const item = tray(alice.page).getByRole('listitem');
    await item.getByText('palette.png').waitFor();
    await item.getByText(/Uploading/).waitFor();
    assert.equal(await item.getByRole('progressbar', { name: 'palette.png' }).count(), 1);
    await shot(alice.page, 'upload-progress');
    release();
    await through;
    await alice.page.unroute('**/api/v1/files?**');
    await eventually(async () => !(await tray(alice.page).isVisible()), { what: 'tray empty' });

    for (const p of [alice.page, bob.page]) {
      const img = msgs(p).last().getByRole('img', { name: 'palette.png' });
      await img.waitFor();
      await eventually(() => img.evaluate((el) => el.complete && el.naturalWidth === 320 && el.naturalHeight === 200),
        { what: 'the image decoded' });
      await msgs(p).last().getByRole('link', { name: 'palette.png' }).waitFor();
    }
    assert.equal(await msgs(bob.page).last().locator('.msg-author').textContent(), 'alice');
  });

  it('sends a text file dropped on the chat; Bob downloads the same bytes', async () => {
    const overlay = await dropOrPaste(alice.page, 'drop', '#composer',
      [{ name: 'notes.txt', type: 'text/plain', base64: notes.toString('base64') }]);
    assert.equal(overlay, true, 'the drop overlay shows while dragging');
    const link = msgs(bob.page).last().getByRole('link', { name: /^notes\.txt, 1\.5 KB\. Download$/ });
    await link.waitFor();
    assert.equal(await msgs(bob.page).last().locator('.attachment-meta').textContent(), '1.5 KB');
    assert.equal(await link.textContent(), 'notes.txt');
    const [download] = await Promise.all([bob.page.waitForEvent('download'), link.click()]);
    assert.equal(download.suggestedFilename(), 'notes.txt');
    assert.deepEqual(await readFile(await download.path()), notes);
    assert.equal(await msgs(alice.page).count(), 2);
    assert.equal(await msgs(bob.page).count(), 2);
  });

  it('records a voice note; Bob plays it', async () => {
    await alice.page.getByRole('button', { name: 'Record a voice note' }).click();
    const bar = alice.page.getByRole('group', { name: 'Recording a voice note' });
    await bar.waitFor();
    // Focus is on Send, the composer is out of the way while recording.
    assert.equal(await alice.page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Send voice note');
    assert.equal(await alice.page.getByRole('textbox', { name: /^Message #/ }).isVisible(), false);
    await eventually(async () => (await bar.getByRole('timer').textContent()) >= '0:02', { what: '2 s recorded' });
    await bar.getByRole('button', { name: 'Send voice note' }).click();
    await alice.page.getByRole('textbox', { name: /^Message #/ }).waitFor();

    const audio = msgs(bob.page).last().locator('audio.attachment-audio');
    await audio.waitFor({ timeout: 20_000 });
    assert.equal(await audio.getAttribute('aria-label'), 'Voice note from alice');
    // The player loads the recording and learns its length (WebM from MediaRecorder carries
    // none: the client has the browser find it).
    const duration = await eventually(async () => {
      const d = await audio.evaluate((a) => (a.readyState >= 1 && Number.isFinite(a.duration) ? a.duration : 0));
      return d > 0 ? d : null;
    }, { timeout: 15_000, what: 'voice note metadata and duration' });
    assert.ok(duration > 1 && duration < 10, `duration ${duration}`);
    await audio.evaluate((a) => a.play());
    await eventually(() => audio.evaluate((a) => a.currentTime > 0.3), { what: 'the voice note plays' });
    await audio.evaluate((a) => a.pause());
    const error = await alice.page.locator('li.msg.pending.failed').count();
    assert.equal(error, 0, 'the server accepted the voice note');
  });

  it('shows the conversation (screenshot)', async () => {
    await alice.page.mouse.move(5, 5);
    await eventually(() => msgs(alice.page).last().locator('audio').evaluate((a) => a.readyState >= 1),
      { what: 'alice\'s player ready' });
    await shot(alice.page, 'attachments');
  });

  it('a file over the size limit (known from hello) shows the error and is not uploaded', async () => {
    const before_ = await msgs(bob.page).count();
    const uploads = countUploads(alice.page);
    await pasteBig(alice.page);
    const alert = tray(alice.page).getByRole('alert');
    await alert.waitFor();
    assert.equal(await alert.textContent(), TOO_BIG);
    await shot(alice.page, 'upload-error');
    await alice.page.waitForTimeout(500);
    uploads.stop();
    assert.equal(uploads.count, 0, 'no upload request was made');
    assert.equal(await alice.page.locator('li.msg.pending').count(), 0, 'no message is pending');
    assert.equal(await msgs(alice.page).count(), before_);
    assert.equal(await msgs(bob.page).count(), before_, 'nothing reached bob');
    await tray(alice.page).getByRole('button', { name: 'Dismiss the error about big.bin' }).click();
    await eventually(async () => !(await tray(alice.page).isVisible()), { what: 'error dismissed' });
  });

  it('without the limit in hello, the first 413 teaches it', async () => {
    // A second tab of Alice's whose hello lacks maxUploadBytes (as from an older server).
    const page = await alice.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((text) => {
        const frame = JSON.parse(text);
        if (frame.type === 'hello') delete frame.data.maxUploadBytes;
        ws.send(JSON.stringify(frame));
      });
    });
    await page.goto(new URL(alice.page.url()).pathname);
    await page.getByRole('textbox', { name: /^Message #/ }).waitFor();
    await eventually(() => page.evaluate(() => document.body.dataset.conn === 'online'), { what: 'online' });
    const before_ = await msgs(bob.page).count();
    const uploads = countUploads(page);
    // The first is uploaded and refused with 413; the second is refused at once.
    for (const expected of [1, 1]) {
      await pasteBig(page);
      const alert = tray(page).getByRole('alert');
      await alert.waitFor();
      assert.equal(await alert.textContent(), TOO_BIG);
      assert.equal(uploads.count, expected, 'upload requests');
      await tray(page).getByRole('button', { name: 'Dismiss the error about big.bin' }).click();
      await eventually(async () => !(await tray(page).isVisible()), { what: 'error dismissed' });
    }
    await page.waitForTimeout(300);
    uploads.stop();
    assert.equal(uploads.count, 1, 'one upload request in all');
    await page.close();
    assert.equal(await msgs(bob.page).count(), before_, 'nothing reached bob');
    assert.deepEqual(errors, []);
  });

  it('Escape throws a recording away', async () => {
    const before_ = await msgs(bob.page).count();
    await alice.page.getByRole('button', { name: 'Record a voice note' }).click();
    const bar = alice.page.getByRole('group', { name: 'Recording a voice note' });
    await bar.waitFor();
    await alice.page.keyboard.press('Escape');
    await eventually(async () => !(await bar.isVisible()), { what: 'recorder closed' });
    assert.equal(await alice.page.evaluate(() => document.activeElement.id), 'composer');
    await alice.page.waitForTimeout(500);
    assert.equal(await msgs(bob.page).count(), before_);
    assert.equal(await tray(alice.page).isVisible(), false);
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });
});
