// Rich messages, presence and unread badges between two people (two browser contexts): edits,
// deletions (own, and an admin's of someone else's and of a server notice), reactions (picker and chips), replies;
// a status picked in one page shows as the dot in the other; a room not open collects an
// unread badge that clears when it is opened (and the server's read marker moves).
// Screenshot: the room view with reactions and a reply.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  createRoomInUi, eventually, inviteCode, joinByCodeInUi, messageTexts, registerInUi, rest,
  restLogin, sendInUi, shot, startWorld,
} from '../lib/harness.js';

const row = (page, text) => page.locator('li.msg', { has: page.locator('.msg-content', { hasText: text }) });
const dotOf = (page, name) => page.locator('#members-panel li.member', { hasText: name }).locator('.presence-dot');
const badgeOf = (page, name) => page.locator('.room-link', { hasText: name }).locator('.badge');

describe('rich messages, presence and unread badges', { timeout: 180_000 }, () => {
  let world; let node; let alice; let bob; let lounge; let random;

  before(async () => {
    world = await startWorld('rich', { people: ['alice', 'bob'] });
    ({ node, alice, bob } = world);
  });
  after(() => world?.close());

  it('sets up two rooms both are in', async () => {
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    random = await createRoomInUi(alice.page, 'Off Topic');
    const randomCode = await inviteCode(alice.page);
    lounge = await createRoomInUi(alice.page, 'Design Review', { description: 'Mockups and feedback' });
    const loungeCode = await inviteCode(alice.page);
    await joinByCodeInUi(bob.page, randomCode, 'Off Topic');
    await joinByCodeInUi(bob.page, loungeCode, 'Design Review');
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => (await p.locator('#members-panel li.member').count()) === 2, { what: 'two members' });
    }
  });

  it('edits a message inline (Escape cancels, Enter saves); the other side sees it', async () => {
    await sendInUi(alice.page, 'The new header is ready for review');
    await eventually(async () => (await messageTexts(bob.page)).includes('The new header is ready for review'),
      { what: 'bob receives' });
    const mine = row(alice.page, 'The new header');
    // Escape cancels.
    await mine.hover();
    await mine.getByRole('button', { name: 'Edit message' }).click();
    const editor = alice.page.getByRole('textbox', { name: 'Edit message' });
    assert.equal(await alice.page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Edit message');
    await editor.fill('something else');
    await editor.press('Escape');
    assert.equal(await editor.count(), 0);
    assert.ok((await messageTexts(alice.page)).includes('The new header is ready for review'));
    // Enter saves.
    await mine.hover();
    await mine.getByRole('button', { name: 'Edit message' }).click();
    await editor.fill('The new header and footer are ready for review');
    await editor.press('Enter');
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => (await messageTexts(p)).includes('The new header and footer are ready for review'),
        { what: 'edited text' });
      await row(p, 'header and footer').locator('.msg-edited', { hasText: '(edited)' }).waitFor();
    }
    // Bob cannot edit Alice's message.
    await row(bob.page, 'header and footer').hover();
    assert.equal(await row(bob.page, 'header and footer').getByRole('button', { name: 'Edit message' }).count(), 0);
  });

  it('reacts from the picker and toggles with the chips, counted on both sides', async () => {
    const target = row(bob.page, 'header and footer');
    await target.hover();
    await target.getByRole('button', { name: 'Add reaction to message from alice' }).click();
    await bob.page.getByRole('group', { name: /Add a reaction/ }).getByRole('button', { name: 'React with 🎉' }).click();
    const chip = (p) => row(p, 'header and footer').locator('button.reaction', { hasText: '🎉' });
    // Each page applies the change when its own event (or ack) arrives: one may be first.
    const pressed = (p, want, what) => eventually(async () => (await chip(p).getAttribute('aria-pressed')) === want, { what });
    await eventually(async () => (await chip(alice.page).textContent()).includes('1'), { what: 'alice sees 🎉 1' });
    await pressed(alice.page, 'false', 'not pressed for alice');
    await pressed(bob.page, 'true', 'pressed for bob');
    // Alice adds hers by clicking the chip: 2, pressed for her.
    await chip(alice.page).click();
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => /2/.test(await chip(p).textContent()), { what: '🎉 2' });
    }
    await pressed(alice.page, 'true', 'pressed for alice');
    // A second emoji from Bob, then Bob takes his 🎉 back.
    await target.hover();
    await target.getByRole('button', { name: 'Add reaction to message from alice' }).click();
    await bob.page.getByRole('button', { name: 'React with 👍' }).click();
    await chip(bob.page).click();
    await eventually(async () => /1/.test(await chip(alice.page).textContent())
      && (await row(alice.page, 'header and footer').locator('button.reaction', { hasText: '👍' }).count()) === 1,
    { what: 'alice sees 🎉 1 and 👍 1' });
    await pressed(bob.page, 'false', 'no longer pressed for bob');
  });

  it('replies: the reply bar, then the parent snippet on both sides', async () => {
    const target = row(bob.page, 'header and footer');
    await target.hover();
    await target.getByRole('button', { name: 'Reply to alice' }).click();
    await bob.page.locator('.reply-bar', { hasText: 'Replying to alice' }).waitFor();
    // Escape drops it, the reply button brings it back.
    await bob.page.keyboard.press('Escape');
    await eventually(async () => !(await bob.page.locator('.reply-bar').isVisible()), { what: 'reply bar gone' });
    await target.hover();
    await target.getByRole('button', { name: 'Reply to alice' }).click();
    await sendInUi(bob.page, 'Looks great, ship it!');
    assert.equal(await bob.page.locator('.reply-bar').isVisible(), false);
    for (const p of [alice.page, bob.page]) {
      const reply = row(p, 'Looks great, ship it!').locator('.msg-reply');
      await eventually(async () => (await reply.count()) === 1, { what: 'reply preview' });
      assert.match(await reply.textContent(), /@alice.*The new header and footer/);
    }
    // The preview jumps to the parent.
    await row(alice.page, 'Looks great').locator('.msg-reply').click();
    assert.equal(await alice.page.evaluate(() => document.activeElement.dataset.author), 'alice');
    await alice.page.mouse.move(5, 5);
    await shot(alice.page, 'rich-room');
  });

  it('deletes: the author their own, the admin anyone’s; tombstones on both sides', async () => {
    await sendInUi(bob.page, 'oops, wrong room');
    await sendInUi(alice.page, 'never mind this one');
    await eventually(async () => (await messageTexts(bob.page)).includes('never mind this one'), { what: 'both sent' });
    // Alice (the room's admin) deletes Bob's message.
    const bobs = row(alice.page, 'oops, wrong room');
    await bobs.hover();
    await bobs.getByRole('button', { name: 'Delete message from bob' }).click();
    await alice.page.getByRole('dialog', { name: 'Delete message' }).getByRole('button', { name: 'Delete' }).click();
    // Bob deletes nothing of Alice's (no button), Alice deletes her own by keyboard.
    await row(bob.page, 'never mind').hover();
    assert.equal(await row(bob.page, 'never mind').getByRole('button', { name: /Delete message/ }).count(), 0);
    await row(alice.page, 'never mind').focus();
    await alice.page.keyboard.press('Delete');
    await alice.page.getByRole('dialog', { name: 'Delete message' }).getByRole('button', { name: 'Delete' }).click();
    for (const p of [alice.page, bob.page]) {
      await eventually(async () => (await p.locator('li.msg.deleted .msg-content', { hasText: 'Message deleted' }).count()) === 2,
        { what: 'two tombstones' });
    }
    // Server notices too: only the admin may delete them.
    const notice = (p) => p.locator('li.sysmsg', { hasText: 'bob joined the room' });
    await notice(bob.page).hover();
    assert.equal(await notice(bob.page).getByRole('button').count(), 0, 'bob may not delete a notice');
    await notice(alice.page).hover();
    await notice(alice.page).getByRole('button', { name: 'Delete notice: bob joined the room' }).click();
    await alice.page.getByRole('dialog', { name: 'Delete message' }).getByRole('button', { name: 'Delete' }).click();
    for (const p of [alice.page, bob.page]) {
      await p.locator('li.sysmsg.deleted', { hasText: 'Notice deleted' }).waitFor();
      assert.equal(await notice(p).count(), 0);
    }
  });

  it('a status picked in one page is the dot in the other', async () => {
    await eventually(async () => (await dotOf(alice.page, 'bob').getAttribute('data-presence')) === 'online',
      { what: 'bob online' });
    await bob.page.getByLabel('Set your status').selectOption('dnd');
    await eventually(async () => (await dotOf(alice.page, 'bob').getAttribute('data-presence')) === 'dnd',
      { what: 'bob dnd at alice' });
    assert.match(await alice.page.locator('#members-panel li.member', { hasText: 'bob' }).textContent(), /Do not disturb/);
    await bob.page.getByLabel('Set your status').selectOption('away');
    await eventually(async () => (await dotOf(alice.page, 'bob').getAttribute('data-presence')) === 'away',
      { what: 'bob away at alice' });
    await bob.page.getByLabel('Set your status').selectOption('online');
    await eventually(async () => (await dotOf(alice.page, 'bob').getAttribute('data-presence')) === 'online',
      { what: 'bob online again' });
  });

  it('counts unread messages in a room not open, and clears them on open', async () => {
    // Bob is in Design Review; Alice writes in Off Topic (over REST: not from her page).
    const { token } = await restLogin(node.url, 'alice');
    for (const content of ['anyone for lunch?', 'the usual place', 'at noon']) {
      const r = await rest(node.url, 'POST', '/messages', { token, body: { roomId: random, content } });
      assert.equal(r.status, 201);
    }
    await eventually(async () => (await badgeOf(bob.page, 'Off Topic').count()) === 1
      && (await badgeOf(bob.page, 'Off Topic').textContent()).startsWith('3'), { what: 'badge 3' });
    assert.equal(await badgeOf(bob.page, 'Design Review').count(), 0, 'no badge on the open room');
    // The link's accessible name says so.
    await bob.page.getByRole('link', { name: /Off Topic.*3 unread/ }).waitFor();
    // A reload gets the same count from the server.
    await bob.page.reload();
    await eventually(async () => (await badgeOf(bob.page, 'Off Topic').count()) === 1, { what: 'badge after reload' });
    assert.match(await badgeOf(bob.page, 'Off Topic').textContent(), /^3/);
    await bob.page.getByRole('link', { name: /Off Topic/ }).click();
    await bob.page.getByRole('heading', { name: 'Off Topic', level: 1 }).waitFor();
    await eventually(async () => (await badgeOf(bob.page, 'Off Topic').count()) === 0, { what: 'badge cleared' });
    // The server moved Bob's read marker: no unread left there either.
    const me = await restLogin(node.url, 'bob');
    await eventually(async () => {
      const r = await rest(node.url, 'GET', '/users/me/rooms', { token: me.token });
      return r.body.data.find((x) => x.id === random)?.unreadCount === 0;
    }, { what: 'server unreadCount 0' });
    // While Bob reads Off Topic, a message in Design Review shows up as 1.
    await sendInUi(alice.page, 'one more thing');
    await eventually(async () => (await badgeOf(bob.page, 'Design Review').count()) === 1, { what: 'badge on Design Review' });
  });

  it('shows a member as offline after their page closes', async () => {
    await bob.context.close();
    await eventually(async () => (await dotOf(alice.page, 'bob').getAttribute('data-presence')) === 'offline',
      { timeout: 40_000, interval: 500, what: 'bob offline at alice' });
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });
});
