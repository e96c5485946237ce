// Shared helpers for the browser tests: start and kill real voiceflow-node processes, launch
// Debian's Chromium through playwright-core, and a few page and REST helpers.

import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const ARTIFACTS = path.join(ROOT, 'web-tests', 'artifacts');
export const NODE_BIN = process.env.VOICEFLOW_NODE_BIN || path.join(ROOT, 'target', 'debug', 'voiceflow-node');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

mkdirSync(ARTIFACTS, { recursive: true });

/** A fresh temporary directory with a fast-hashing node config in it. `toml`: more of the
 *  config, appended after the `[limits]` table (e.g. `[files]\nmax_bytes = 65536\n`). */
export function makeDataDir(label, { toml = '' } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), `vf-web-${label}-`));
  writeFileSync(path.join(dir, 'node.toml'),
    'password_hash_memory_kib = 1024\npassword_hash_iterations = 1\n'
    // Tests register and post faster than a person: no rate limits.
    + '[limits]\nrate_limits = false\n'
    // Any free media port: tests (and other checkouts' tests) run side by side.
    + (toml.includes('[voice]') ? '' : '[voice]\nudp_port = 0\n')
    + toml);
  return dir;
}

/**
 * Starts voiceflow-node on `dir` (listening on `port`, 0 for any; `args`: more flags, e.g.
 * `--tls-self-signed`) and resolves once it printed `VOICEFLOW_LISTENING addr`; `url` is
 * https:// when it printed a TLS fingerprint first. Its log goes to artifacts/<label>-node.log.
 */
export function startNode(dir, { port = 0, label = 'node', args = [] } = {}) {
  const child = spawn(NODE_BIN, [
    '--listen', `127.0.0.1:${port}`,
    '--data-dir', path.join(dir, 'data'),
    '--config', path.join(dir, 'node.toml'),
    ...args,
  ], { env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(path.join(ARTIFACTS, `${label}-node.log`), { flags: 'a' });
  child.stderr.pipe(log);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('voiceflow-node did not report its address within 30 s'));
    }, 30_000);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`voiceflow-node exited early (${code ?? signal}); see ${label}-node.log`));
    });
    const lines = createInterface({ input: child.stdout });
    let fingerprint = null;
    lines.on('line', (line) => {
      const tls = /^VOICEFLOW_TLS_FINGERPRINT SHA256 (\S+)/.exec(line);
      if (tls) fingerprint = tls[1];
      const m = /^VOICEFLOW_LISTENING (\S+)/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const addr = m[1];
      resolve({
        child,
        addr,
        port: Number(addr.split(':').pop()),
        url: `${fingerprint ? 'https' : 'http'}://${addr}`,
        /** The SHA-256 fingerprint of its certificate when it serves HTTPS. */
        fingerprint,
        /** SIGKILL: no shutdown code runs. Resolves when the process is gone. */
        kill9: () => new Promise((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done();
          child.once('exit', () => done());
          child.kill('SIGKILL');
        }),
      });
    });
  });
}

export function removeDir(dir) {
  try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
}

/** Debian's Chromium, headless, with a fresh profile (Playwright makes a new temporary
 *  --user-data-dir for every launch). `media`: it hands out a fake microphone (a beeping tone)
 *  without asking, and plays audio without a user gesture: for voice channels, stages, calls
 *  and voice notes. */
export function launchBrowser({ media = false, args = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic',
      ...(media ? [
        '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
        '--autoplay-policy=no-user-gesture-required',
      ] : []),
      ...args,
    ],
  });
}

/**
 * The usual set-up of a test file: a fresh data dir (`toml`: more config, as for makeDataDir),
 * a node started on it (its log: artifacts/<nodeLabel>-node.log, `label` unless told), a
 * Chromium (launchBrowser, with `media`) and one person (newPerson) for each of
 * `people`: a name, or {name, ...newPerson options}. Resolves with
 * {dir, node, browser, close(), [name]: person…}; close() ends the browser and the node (the
 * one in `world.node` then, so a test may restart it there) and removes the dir. When the
 * set-up fails half-way, what was started is ended before the error is thrown.
 */
export async function startWorld(label, {
  media = false, toml = '', people = [], nodeLabel = label, nodeArgs = [], browserArgs = [], baseURL,
} = {}) {
  const world = {
    dir: makeDataDir(label, { toml }),
    node: null,
    browser: null,
    async close() {
      await world.browser?.close();
      await world.node?.kill9();
      removeDir(world.dir);
    },
  };
  try {
    world.node = await startNode(world.dir, { label: nodeLabel, args: nodeArgs });
    world.browser = await launchBrowser({ media, args: browserArgs });
    // `baseURL(node)`: where the pages go instead of node.url (another name for the node).
    const url = baseURL ? baseURL(world.node) : world.node.url;
    for (const person of people) {
      const { name, ...options } = typeof person === 'string' ? { name: person } : person;
      if (name in world) throw new Error(`startWorld: a person cannot be called ${name}`);
      world[name] = await newPerson(world.browser, url, {
        label: name, ignoreHTTPSErrors: url.startsWith('https:'), ...options,
      });
    }
  } catch (e) {
    await world.close();
    throw e;
  }
  return world;
}

/** A new browser context (its own storage: another person) and a page in it.
 *  `ignoreHTTPSErrors`: accept the node's self-signed certificate. */
export async function newPerson(browser, baseURL, {
  width = 1366, height = 820, label = 'page', ignoreHTTPSErrors = false,
} = {}) {
  const context = await browser.newContext({
    baseURL, viewport: { width, height }, deviceScaleFactor: 1, colorScheme: 'dark',
    isMobile: width < 500, hasTouch: width < 500, ignoreHTTPSErrors,
  });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`${label}: ${e.message}`));
  page.on('console', (msg) => {
    // Chromium's own note when the client subscribes to Web Push in a browser context of
    // Playwright's (they are off the record, where Chrome has no Push API): not the page's error.
    if (msg.type() === 'error'
      && !/WebSocket|Failed to load resource|ERR_CONNECTION|Push API in incognito mode/.test(msg.text())) {
      errors.push(`${label} console: ${msg.text()}`);
    }
  });
  return { context, page, errors };
}

/** Registers through the UI and waits for the signed-in app. */
export async function registerInUi(page, name) {
  await page.goto('/register');
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Email').fill(`${name}@example.com`);
  await page.getByLabel('Password', { exact: true }).fill('password123');
  await page.getByLabel('Confirm password').fill('password123');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Browse rooms' }).waitFor();
}

/** A REST call; resolves with {status, body}. */
export async function rest(baseURL, method, path_, { token, body } = {}) {
  const res = await fetch(`${baseURL}/api/v1${path_}`, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/** Signs `name` in over REST (registering first if needed); resolves with {token, user}. */
export async function restLogin(baseURL, name) {
  let r = await rest(baseURL, 'POST', '/auth/login', { body: { email: `${name}@example.com`, password: 'password123' } });
  if (r.status !== 200) {
    r = await rest(baseURL, 'POST', '/auth/register', {
      body: { username: name, email: `${name}@example.com`, password: 'password123', confirmPassword: 'password123' },
    });
  }
  if (!r.body?.success) throw new Error(`login ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.data;
}

/** The text of every message row on the page, oldest first (tombstones as "[deleted]"). */
export function messageTexts(page) {
  return page.$$eval('.message-list li.msg:not(.pending)', (rows) => rows.map((li) =>
    (li.classList.contains('deleted') ? '[deleted]' : li.querySelector('.msg-content')?.textContent ?? '')));
}

/** The message ids on the page, oldest first. */
export function messageIds(page) {
  return page.$$eval('.message-list li.msg[data-message-id]', (rows) => rows.map((li) => li.dataset.messageId));
}

/** Polls `fn` until it returns a truthy value (or throws after `timeout` ms). */
export async function eventually(fn, { timeout = 15_000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

/** Sends a message through the composer (Enter). */
export async function sendInUi(page, text) {
  const box = page.getByRole('textbox', { name: /^Message #/ });
  await box.fill(text);
  await box.press('Enter');
}

/** Creates a room through the UI ("Create a room" dialog) and waits for its view; resolves
 *  with its id. `kind`: text | voice | stage. */
export async function createRoomInUi(page, name, { kind = 'text', description = '' } = {}) {
  await page.getByRole('button', { name: 'Create a room' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Create a room' });
  await dialog.getByLabel('Room name').fill(name);
  if (description) await dialog.getByLabel('Description').fill(description);
  await dialog.getByLabel('Room type').selectOption(kind);
  await dialog.getByRole('button', { name: 'Create room' }).click();
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  return new URL(page.url()).pathname.split('/').pop();
}

/** Joins a room by its invite code through the room browser and waits for its view. */
export async function joinByCodeInUi(page, code, name) {
  await page.getByRole('link', { name: 'Browse rooms' }).click();
  await page.getByLabel('Have an invite code?').fill(code);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.getByRole('heading', { name, level: 1 }).waitFor();
}

/** The invite code shown in the open room's header. */
export async function inviteCode(page) {
  return (await page.locator('.invite-code').textContent()).trim();
}

/** Audio packets received so far on the page's voice connection (inbound-rtp, summed), or -1
 *  when there is no connection. */
export function inboundAudioPackets(page) {
  return inboundTotal(page, 'audio', 'packetsReceived');
}

/** The sum of one `inbound-rtp` statistic over the page's streams of `kind` (-1: no voice
 *  connection). */
function inboundTotal(page, kind, field) {
  return page.evaluate(async ([k, f]) => {
    const pc = window.__voiceflow?.voicePc;
    if (!pc) return -1;
    const stats = await pc.getStats();
    let n = 0;
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && (r.kind === k || r.mediaType === k)) n += r[f] || 0;
    });
    return n;
  }, [kind, field]);
}

/** Frames decoded so far on the page's inbound video streams (-1: no voice connection). */
export function inboundVideoFrames(page) {
  return inboundTotal(page, 'video', 'framesDecoded');
}

/** The page decodes inbound video frames, and more keep coming. */
export async function assertVideoFramesRising(page, what) {
  let first = 0;
  await eventually(async () => { first = await inboundVideoFrames(page); return first > 0; },
    { timeout: 20_000, what: `${what}: first decoded frames` });
  await eventually(async () => (await inboundVideoFrames(page)) > first + 10,
    { timeout: 10_000, what: `${what}: frames keep coming` });
}

/**
 * Makes the page's next voice connections prefer the video codec `mime` (`video/VP9`) on the
 * sections it sends on: every video transceiver the page adds lists that codec's variants
 * first (RTCRtpTransceiver.setCodecPreferences), the others (RTX among them) after, so the
 * server's answer, which keeps the offer's order, names it first and Chromium sends it.
 */
export function preferVideoCodec(page, mime) {
  return page.evaluate((m) => {
    const add = RTCPeerConnection.prototype.addTransceiver;
    RTCPeerConnection.prototype.addTransceiver = function addPreferring(kind, init) {
      const t = add.call(this, kind, init);
      if (kind === 'video') {
        const codecs = RTCRtpReceiver.getCapabilities('video').codecs;
        const is = (c) => c.mimeType.toLowerCase() === m.toLowerCase();
        t.setCodecPreferences([...codecs.filter(is), ...codecs.filter((c) => !is(c))]);
      }
      return t;
    };
  }, mime);
}

/**
 * The codecs of the page's RTP streams with frames, by direction: {outbound: [mime…],
 * inbound: [mime…]} (getStats `codec` entries of outbound/inbound video).
 */
export function videoCodecsInUse(page) {
  return page.evaluate(async () => {
    const stats = await window.__voiceflow.voicePc.getStats();
    const mime = (id) => stats.get(id)?.mimeType;
    const out = { outbound: [], inbound: [] };
    stats.forEach((r) => {
      if (r.kind !== 'video' || !r.codecId) return;
      if (r.type === 'outbound-rtp' && r.framesEncoded > 0) out.outbound.push(mime(r.codecId));
      if (r.type === 'inbound-rtp' && r.framesDecoded > 0) out.inbound.push(mime(r.codecId));
    });
    return out;
  });
}

/** What a page's voice connection looks like (for failure messages). */
export function voiceDebug(page) {
  return page.evaluate(async () => {
    const pc = window.__voiceflow?.voicePc;
    if (!pc) return 'no connection';
    const stats = await pc.getStats();
    const rtp = [];
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' || r.type === 'outbound-rtp') {
        rtp.push(`${r.type} ${r.kind} ssrc=${r.ssrc} packets=${r.packetsReceived ?? r.packetsSent}`);
      }
    });
    const tr = pc.getTransceivers().map((t) => `${t.mid}:${t.direction}/${t.currentDirection}`);
    return `conn=${pc.connectionState} ice=${pc.iceConnectionState} sig=${pc.signalingState} `
      + `transceivers=[${tr}] rtp=[${rtp.join('; ')}] log=[${(window.__voiceflow.voice?.log || []).join(' | ')}]`;
  });
}

/** Waits until the page's voice connection receives audio, and keeps receiving it. */
export async function assertReceivingAudio(page, what) {
  let first = 0;
  try {
    await eventually(async () => { first = await inboundAudioPackets(page); return first > 0; },
      { timeout: 20_000, what: `${what}: first audio packets` });
  } catch (e) {
    throw new Error(`${e.message}; ${await voiceDebug(page).catch((x) => x.message)}`);
  }
  await eventually(async () => (await inboundAudioPackets(page)) > first + 20,
    { timeout: 10_000, what: `${what}: audio packets keep coming` });
}
