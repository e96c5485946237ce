// Two people (two browser contexts) register, create and join a room by code, chat both ways,
// see each other typing and online, delete a message; the room browser lists and filters
// public rooms. Screenshots: login, register errors, room browser, room view (desktop).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  eventually, messageTexts, registerInUi, rest, restLogin, sendInUi, shot, startWorld,
} from '../lib/harness.js';

describe('two people chatting', { timeout: 180_000 }, () => {
  let world; let node; let alice; let bob; let joinCode;

  before(async () => {
    world = await startWorld('chat', { people: ['alice', 'bob'] });
    ({ node, alice, bob } = world);
  });
  after(() => world?.close());

  it('serves the app at / and sends a signed-out visitor to sign in', async () => {
    const { page } = alice;
    const res = await page.goto('/');
    assert.match(res.headers()['content-security-policy'], /script-src 'self'/);
    await page.getByRole('heading', { name: 'Welcome back!' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/login');
    await shot(page, 'login');
  });

  it("shows the server's validation errors by the fields", async () => {
    const { page } = alice;
    await page.getByRole('link', { name: 'Register' }).click();
    await page.getByRole('heading', { name: 'Create an account' }).waitFor();
    const submit = page.getByRole('button', { name: 'Create account' });
    const fill = async (u, e, p, c) => {
      await page.getByLabel('Username').fill(u);
      await page.getByLabel('Email').fill(e);
      await page.getByLabel('Password', { exact: true }).fill(p);
      await page.getByLabel('Confirm password').fill(c);
      await submit.click();
    };
    const errorOf = (f) => page.locator(`[data-error-for="${f}"]`);

    await fill('al', 'alice@example.com', 'password123', 'password123');
    await eventually(async () => /3-20/.test(await errorOf('username').textContent()), { what: 'username error' });
    assert.equal(await page.getByLabel('Username').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.name), 'username');

    await fill('alice', 'not-an-email', 'password123', 'password123');
    await eventually(async () => /valid address/.test(await errorOf('email').textContent()), { what: 'email error' });
    assert.equal(await errorOf('username').textContent(), '', 'old errors are cleared');

    await fill('alice', 'alice@example.com', 'short', 'short');
    await eventually(async () => /at least 8/.test(await errorOf('password').textContent()), { what: 'password error' });

    await fill('alice', 'alice@example.com', 'password123', 'password124');
    await eventually(async () => /do not match/.test(await errorOf('confirmPassword').textContent()), { what: 'confirm error' });
    await shot(page, 'register-errors');
  });

  it('registers both, and a taken username is shown by its field', async () => {
    await registerInUi(alice.page, 'alice');
    const { page } = bob;
    await page.goto('/register');
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Email').fill('bob@example.com');
    await page.getByLabel('Password', { exact: true }).fill('password123');
    await page.getByLabel('Confirm password').fill('password123');
    await page.getByRole('button', { name: 'Create account' }).click();
    await eventually(async () => /already taken/.test(await page.locator('[data-error-for="username"]').textContent()),
      { what: 'conflict error' });
    await registerInUi(page, 'bob');
  });

  it('creates a private room with settings (showing its validation errors)', async () => {
    const { page } = alice;
    await page.getByRole('button', { name: 'Create a room' }).first().click();
    const dialog = page.getByRole('dialog', { name: 'Create a room' });
    await dialog.getByLabel('Room name').fill('ab');
    await dialog.getByRole('button', { name: 'Create room' }).click();
    await eventually(async () => /3-100/.test(await dialog.locator('[data-error-for="name"]').textContent()),
      { what: 'room name error' });
    await dialog.getByLabel('Room name').fill('Team Lounge');
    await dialog.getByLabel('Description').fill('Where the team hangs out');
    await dialog.getByLabel('Member limit').fill('1');
    await dialog.getByRole('button', { name: 'Create room' }).click();
    await eventually(async () => /2-500/.test(await dialog.locator('[data-error-for="maxUsers"]').textContent()),
      { what: 'maxUsers error' });
    await dialog.getByLabel('Member limit').fill('25');
    await dialog.getByLabel(/^Private/).check();
    await dialog.getByRole('button', { name: 'Create room' }).click();
    await page.getByRole('heading', { name: 'Team Lounge', level: 1 }).waitFor();
    joinCode = (await page.locator('.invite-code').textContent()).trim();
    assert.match(joinCode, /^[A-Z0-9]{8}$/);
    // The sidebar lists it, marked private; the composer has focus.
    await page.getByRole('link', { name: /Team Lounge/ }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'composer');
  });

  it('the other person joins by code; both see each other online', async () => {
    const { page } = bob;
    await page.getByLabel('Have an invite code?').fill('WRONGCODE');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await eventually(async () => /No room has that code/.test(await page.locator('#join-code-error').textContent()),
      { what: 'bad code error' });
    await page.getByLabel('Have an invite code?').fill(joinCode.toLowerCase());
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await page.getByRole('heading', { name: 'Team Lounge', level: 1 }).waitFor();
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => {
        const online = await p.$$eval('.member.online .member-name', (els) => els.map((e) => e.textContent).sort());
        return online.join() === 'alice,bob';
      }, { what: 'both members online' });
    }
  });

  it('chats both ways, live, each message once', async () => {
    await sendInUi(alice.page, 'Hi Bob! Welcome to the lounge 👋');
    await eventually(async () => (await messageTexts(bob.page)).includes('Hi Bob! Welcome to the lounge 👋'),
      { what: 'bob receives' });
    await sendInUi(bob.page, 'Hey Alice, thanks! Glad to be here.');
    await sendInUi(bob.page, 'Shift+Enter works too:\nsecond line');
    const expected = ['Hi Bob! Welcome to the lounge 👋', 'Hey Alice, thanks! Glad to be here.',
      'Shift+Enter works too:\nsecond line'];
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => JSON.stringify(await messageTexts(p)) === JSON.stringify(expected),
        { what: 'both see the same three messages' });
      assert.equal(await p.locator('li.msg.pending').count(), 0, 'no optimistic copy left behind');
    }
    // Shift+Enter inserts a newline instead of sending.
    const box = alice.page.getByRole('textbox', { name: /^Message #/ });
    await box.fill('line one');
    await box.press('Shift+Enter');
    await box.type('line two');
    assert.equal(await box.inputValue(), 'line one\nline two');
    await box.press('Enter');
    await eventually(async () => (await messageTexts(bob.page)).includes('line one\nline two'), { what: 'multi-line' });
  });

  it('shows who is typing, and stops when they send', async () => {
    const box = bob.page.getByRole('textbox', { name: /^Message #/ });
    await box.pressSequentially('I am typing something', { delay: 20 });
    await eventually(async () => /bob is typing/.test(await alice.page.locator('.typing-line').textContent()),
      { what: 'typing indicator' });
    await box.press('Enter');
    await eventually(async () => (await alice.page.locator('.typing-line').textContent()) === '',
      { what: 'typing indicator cleared' });
    // Blur also stops it.
    await box.pressSequentially('hmm', { delay: 20 });
    await eventually(async () => /bob is typing/.test(await alice.page.locator('.typing-line').textContent()),
      { what: 'typing again' });
    await bob.page.getByRole('region', { name: /^Messages in/ }).focus();
    await eventually(async () => (await alice.page.locator('.typing-line').textContent()) === '',
      { what: 'typing cleared on blur' });
    await box.fill('');
  });

  it('lets the author (and only the author or an admin) delete a message', async () => {
    // Bob is not an admin: he has no delete button on Alice's message.
    const alicesMsg = bob.page.locator('li.msg', { hasText: 'Hi Bob!' });
    await alicesMsg.hover();
    assert.equal(await alicesMsg.getByRole('button', { name: /Delete message/ }).count(), 0);
    // By keyboard: into the message list, End to the newest, Delete.
    await bob.page.getByRole('region', { name: /^Messages in/ }).focus();
    await bob.page.keyboard.press('End');
    assert.equal(await bob.page.evaluate(() => document.activeElement.querySelector('.msg-content')?.textContent),
      'I am typing something');
    await bob.page.keyboard.press('Delete');
    await bob.page.getByRole('dialog', { name: 'Delete message' }).getByRole('button', { name: 'Delete' }).click();
    // And by mouse, as the author of another one.
    await sendInUi(alice.page, 'a message to take back');
    const row = alice.page.locator('li.msg', { hasText: 'a message to take back' });
    await row.hover();
    await row.getByRole('button', { name: 'Delete message from alice' }).click();
    await alice.page.getByRole('dialog', { name: 'Delete message' }).getByRole('button', { name: 'Delete' }).click();
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => (await messageTexts(p)).filter((t) => t === '[deleted]').length === 2,
        { what: 'two tombstones' });
    }
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => (await messageTexts(p)).includes('[deleted]'), { what: 'tombstone' });
    }
  });

  it('the room browser lists and filters public rooms', async () => {
    const { token } = await restLogin(node.url, 'carol');
    for (const [name, description] of [
      ['Rust Fans', 'Ownership, borrowing and fearless concurrency'],
      ['Music Corner', 'Share what you are listening to'],
      ['Board Games', 'Catan, Carcassonne and friends'],
      ['Photography', 'Gear talk and weekly photo challenges'],
    ]) {
      const r = await rest(node.url, 'POST', '/rooms', { token, body: { name, description, maxUsers: 50 } });
      assert.equal(r.status, 201);
    }
    const { page } = bob;
    await page.getByRole('link', { name: 'Browse rooms' }).click();
    await page.getByRole('heading', { name: 'Browse rooms' }).waitFor();
    await page.getByRole('heading', { name: 'Music Corner' }).waitFor();
    // The private room is not listed.
    assert.equal(await page.getByRole('heading', { name: 'Team Lounge', level: 3 }).count(), 0);
    await shot(page, 'room-browser');
    await page.getByLabel('Search public rooms').fill('mus');
    await eventually(async () => (await page.locator('.room-card').count()) === 1, { what: 'filtered list' });
    await page.getByLabel('Search public rooms').fill('');
    await page.getByRole('button', { name: 'Join Rust Fans' }).click();
    await page.getByRole('heading', { name: 'Rust Fans', level: 1 }).waitFor();
    await sendInUi(page, 'fn main() { println!("hello"); }');
    await eventually(async () => (await messageTexts(page)).length === 1, { what: 'message in Rust Fans' });
  });

  it('looks right on a desktop screen', async () => {
    const { page } = alice;
    await sendInUi(page, 'The invite code is in the header; the member list is on the right.');
    await eventually(async () => (await page.locator('li.msg.pending').count()) === 0, { what: 'sent' });
    await page.mouse.move(5, 5);
    await shot(page, 'room-desktop');
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });
});
