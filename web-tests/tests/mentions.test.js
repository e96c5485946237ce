// Mentions and desktop notifications: Alice writes "@bo", picks Bob in the composer's mention
// picker and sends; the message stores `<@bobId>` and shows "@bob". Bob (notifications granted
// to his browser context) has another room open: the client calls the browser's real
// Notification constructor (wrapped by a spy that passes every call through), the title reads
// "(1) …" and the room has a mention badge; opening the room clears both. Bob then sets the
// room to "Nothing" in its bell menu: the next mention still counts but shows nothing. A call
// from Alice rings with a notification, and her direct message shows one.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { eventually, registerInUi, rest, restLogin, shot, startWorld } from '../lib/harness.js';

describe('mentions and notifications', { timeout: 180_000 }, () => {
  let world; let node; let alice; let bob;
  let team; let other; let aliceToken;
  const shown = [];

  before(async () => {
    world = await startWorld('mentions', { people: ['alice', 'bob'] });
    ({ node, alice, bob } = world);
    await bob.context.grantPermissions(['notifications'], { origin: node.url });
    // Every Notification the client makes is recorded, then made by the real constructor.
    await bob.context.exposeFunction('__notified', (title, body) => { shown.push({ title, body }); });
    await bob.context.addInitScript(() => {
      const Real = window.Notification;
      window.Notification = new Proxy(Real, {
        construct(target, args) {
          window.__notified(String(args[0]), String(args[1]?.body ?? ''));
          return Reflect.construct(target, args);
        },
      });
    });
  });
  after(() => world?.close());

  it('lets both in, Bob reading another room', async () => {
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    aliceToken = (await restLogin(node.url, 'alice')).token;
    const bobToken = (await restLogin(node.url, 'bob')).token;
    const made = await rest(node.url, 'POST', '/rooms', { token: aliceToken, body: { name: 'team' } });
    const made2 = await rest(node.url, 'POST', '/rooms', { token: bobToken, body: { name: 'other' } });
    assert.equal(made.status, 201);
    team = made.body.data;
    other = made2.body.data;
    const joined = await rest(node.url, 'POST', `/rooms/${team.joinCode}/join`, { token: bobToken, body: {} });
    assert.equal(joined.status, 200);
    await alice.page.goto(`/rooms/${team.id}`);
    await bob.page.goto(`/rooms/${other.id}`);
    await bob.page.getByRole('heading', { name: 'other', exact: true }).waitFor();
    assert.equal(await bob.page.evaluate(() => Notification.permission), 'granted');
    await bob.page.bringToFront();
  });

  it('picks Bob from the mention picker and sends <@id>, shown as @bob', async () => {
    const { page } = alice;
    await page.getByRole('heading', { name: 'team', exact: true }).waitFor();
    const box = page.getByRole('textbox', { name: 'Message #team' });
    await box.pressSequentially('hey @bo');
    const option = page.getByRole('option', { name: 'bob' });
    await option.waitFor();
    await box.press('Enter'); // picks
    assert.equal(await box.inputValue(), 'hey @bob ');
    await box.pressSequentially('look');
    await box.press('Enter'); // sends
    const mention = page.locator('.message-list li.msg .mention').last();
    await mention.waitFor();
    assert.equal(await mention.textContent(), '@bob');
    const bobId = (await restLogin(node.url, 'bob')).user.id;
    const history = await rest(node.url, 'GET', `/rooms/${team.id}/messages?limit=5`, { token: aliceToken });
    const stored = history.body.data.find((m) => m.content.includes('look'));
    assert.equal(stored.content, `hey <@${bobId}> look`);
    assert.deepEqual(stored.mentions, [bobId]);
    // The editor shows the name, and saving keeps the mention.
    await box.press('ArrowUp');
    const editorBox = page.getByRole('textbox', { name: 'Edit message' });
    assert.equal(await editorBox.inputValue(), 'hey @bob look');
    await editorBox.fill('hey @bob look again');
    await editorBox.press('Enter');
    await eventually(async () => {
      const after = await rest(node.url, 'GET', `/rooms/${team.id}/messages?limit=5`, { token: aliceToken });
      const edited = after.body.data.find((m) => m.id === stored.id);
      return edited.content === `hey <@${bobId}> look again` && edited.mentions?.[0] === bobId;
    }, { what: 'the edit stored with its mention' });
  });

  it('shows Bob a desktop notification, a title badge and a mention badge', async () => {
    const { page } = bob;
    await eventually(() => shown.length === 1, { what: 'a notification' });
    assert.equal(shown[0].title, 'alice mentioned you in team');
    assert.match(shown[0].body, /hey @bob look/); // as first sent
    await eventually(async () => /^\(1\) /.test(await page.title()), { what: 'title badge' });
    const badge = page.locator(`a.room-link[data-room-id="${team.id}"] .badge-mention`);
    assert.equal(await badge.getAttribute('data-mentions'), '1');
    await shot(page, 'mention-notification');
    // Reading the room clears both, and the message is marked as naming him.
    await page.locator(`a.room-link[data-room-id="${team.id}"]`).click();
    await page.getByRole('heading', { name: 'team', exact: true }).waitFor();
    await eventually(async () => !/^\(\d+\) /.test(await page.title()), { what: 'title cleared' });
    await eventually(async () => (await badge.count()) === 0, { what: 'badge cleared' });
    await page.locator('.message-list li.msg.mentioned').first().waitFor();
  });

  it('sets the room to Nothing in its bell menu: counted, not shown', async () => {
    const { page } = bob;
    await page.getByRole('button', { name: 'Notification settings' }).click();
    await page.getByRole('menuitemradio', { name: 'Nothing' }).click();
    const bobToken = (await restLogin(node.url, 'bob')).token;
    await eventually(async () => {
      const rooms = await rest(node.url, 'GET', '/users/me/rooms', { token: bobToken });
      return rooms.body.data.find((r) => r.id === team.id)?.notifications?.level === 'none';
    }, { what: 'the setting stored' });
    await page.goto(`/rooms/${other.id}`);
    await page.getByRole('heading', { name: 'other', exact: true }).waitFor();
    await page.bringToFront();
    const box = alice.page.getByRole('textbox', { name: 'Message #team' });
    await box.fill('again @bob, see this');
    await box.press('Enter');
    await eventually(async () => /^\(1\) /.test(await page.title()), { what: 'counted' });
    assert.equal(shown.length, 1, `nothing more shown: ${JSON.stringify(shown)}`);
  });

  it('rings with a notification for a call, and notifies a direct message', async () => {
    const bobId = (await restLogin(node.url, 'bob')).user.id;
    const dm = await rest(node.url, 'POST', '/dms', { token: aliceToken, body: { userId: bobId } });
    assert.ok(dm.status === 200 || dm.status === 201, JSON.stringify(dm.body));
    const dmId = dm.body.data.id ?? dm.body.data.roomId;
    const call = (type) => alice.page.evaluate(([t, roomId]) => window.__voiceflow.socket.request(t, { roomId }),
      [type, dmId]);
    await call('call:start');
    await eventually(() => shown.some((n) => n.title === 'alice is calling'), { what: 'the call notification' });
    await call('call:cancel');
    // Bob's client now follows the conversation: a message in it is a notification.
    await bob.page.locator(`a.room-link[data-room-id="${dmId}"]`).waitFor();
    await eventually(() => bob.page.evaluate((id) => Boolean(window.__voiceflow.store.room(id)?.subscribed), dmId),
      { what: 'the DM followed' });
    await alice.page.evaluate((roomId) => window.__voiceflow.socket.request('message:send',
      { roomId, content: 'psst' }), dmId);
    await eventually(() => shown.some((n) => n.title === 'alice' && n.body === 'psst'), { what: 'the DM notification' });
    assert.deepEqual(world.alice.errors.concat(world.bob.errors), []);
  });
});
