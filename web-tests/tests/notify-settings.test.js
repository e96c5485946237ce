// The default and per-community notification settings in the web client: Bob (notifications
// granted, every Notification recorded by a spy that passes it through to the real one) sets
// his default to "Nothing" from the sidebar's "Notification defaults" menu: a mention in a
// room without its own setting is counted but shows nothing. He sets a community to "Only
// mentions" from the bell in its header: a mention in its channel shows a notification again
// (the community's setting wins over the default), and the server stored both.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { eventually, registerInUi, rest, restLogin, shot, startWorld } from '../lib/harness.js';

describe('default and community notification settings', { timeout: 180_000 }, () => {
  let world; let node; let alice; let bob;
  let aliceToken; let bobToken; let bobId;
  let team; let other; let community; let channel;
  const shown = [];

  before(async () => {
    world = await startWorld('notify-settings', { people: ['alice', 'bob'] });
    ({ node, alice, bob } = world);
    await bob.context.grantPermissions(['notifications'], { origin: node.url });
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

  /** Alice says `content` in room `roomId` through her client's socket. */
  const say = (roomId, content) => alice.page.evaluate(async ([id, text]) => {
    const socket = window.__voiceflow.socket;
    await socket.request('room:join', { roomId: id });
    return socket.request('message:send', { roomId: id, content: text });
  }, [roomId, content]);

  /** Bob's own settings as the server has them. */
  const settings = async () => (await rest(node.url, 'GET', '/users/me/notification-settings', { token: bobToken })).body.data;

  it('lets both in: a room, and a community with a channel', async () => {
    await registerInUi(alice.page, 'alice');
    await registerInUi(bob.page, 'bob');
    aliceToken = (await restLogin(node.url, 'alice')).token;
    const login = await restLogin(node.url, 'bob');
    bobToken = login.token;
    bobId = login.user.id;
    team = (await rest(node.url, 'POST', '/rooms', { token: aliceToken, body: { name: 'team' } })).body.data;
    other = (await rest(node.url, 'POST', '/rooms', { token: bobToken, body: { name: 'other' } })).body.data;
    const joined = await rest(node.url, 'POST', `/rooms/${team.joinCode}/join`, { token: bobToken, body: {} });
    assert.equal(joined.status, 200);
    const made = await rest(node.url, 'POST', '/communities', { token: aliceToken, body: { name: 'Guild' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    community = made.body.data;
    const invite = await rest(node.url, 'POST', `/communities/${community.id}/invites`, { token: aliceToken, body: {} });
    const enter = await rest(node.url, 'POST', `/invites/${invite.body.data.code}/join`, { token: bobToken });
    assert.equal(enter.status, 200, JSON.stringify(enter.body));
    const ch = await rest(node.url, 'POST', `/communities/${community.id}/channels`,
      { token: aliceToken, body: { name: 'general' } });
    assert.equal(ch.status, 201, JSON.stringify(ch.body));
    channel = ch.body.data;
    await alice.page.goto(`/rooms/${team.id}`);
    await alice.page.getByRole('heading', { name: 'team', exact: true }).waitFor();
    await bob.page.goto(`/rooms/${other.id}`);
    await bob.page.getByRole('heading', { name: 'other', exact: true }).waitFor();
    await bob.page.bringToFront();
  });

  it('sets the default to Nothing from the sidebar: a mention is counted, not shown', async () => {
    const { page } = bob;
    await page.getByRole('button', { name: 'Notification defaults' }).click();
    const menu = page.getByRole('menu', { name: 'Default notifications' });
    await menu.waitFor();
    assert.equal(await menu.getByRole('menuitemradio', { name: 'Not set (all messages)' }).getAttribute('aria-checked'), 'true');
    await shot(page, 'notify-default-menu');
    await menu.getByRole('menuitemradio', { name: 'Nothing' }).click();
    await eventually(async () => (await settings()).default.level === 'none', { what: 'the default stored' });
    const sent = await say(team.id, `stand-up, <@${bobId}>?`);
    assert.ok(sent?.message?.id, JSON.stringify(sent));
    await eventually(async () => /^\(1\) /.test(await page.title()), { what: 'the mention counted' });
    assert.deepEqual(shown, [], 'the default says nothing');
    // Reopened, the menu shows what is stored.
    await page.getByRole('button', { name: 'Notification defaults' }).click();
    assert.equal(await menu.getByRole('menuitemradio', { name: 'Nothing' }).getAttribute('aria-checked'), 'true');
    await page.keyboard.press('Escape');
  });

  it('sets the community to Only mentions from its header: its channel notifies again', async () => {
    const { page } = bob;
    await page.goto(`/c/${community.id}`);
    const bell = page.getByRole('button', { name: 'Community notifications' });
    await bell.click();
    const menu = page.getByRole('menu', { name: 'Notifications for this community' });
    await menu.getByRole('menuitemradio', { name: 'Only mentions' }).click();
    await eventually(async () => (await settings()).communities.find((c) => c.id === community.id)?.level === 'mentions',
      { what: 'the community setting stored' });
    await eventually(async () => {
      const rooms = await rest(node.url, 'GET', '/users/me/rooms', { token: bobToken });
      return rooms.body.data.find((r) => r.id === team.id)?.notifications?.level === 'none';
    }, { what: 'other rooms keep the default' });
    await bell.click();
    assert.equal(await menu.getByRole('menuitemradio', { name: 'Only mentions' }).getAttribute('aria-checked'), 'true');
    await shot(page, 'notify-community-menu');
    await page.keyboard.press('Escape');
    await page.goto(`/rooms/${other.id}`);
    await page.getByRole('heading', { name: 'other', exact: true }).waitFor();
    await page.bringToFront();
    const sent = await say(channel.id, `<@${bobId}> release notes please`);
    assert.ok(sent?.message?.id, JSON.stringify(sent));
    await eventually(() => shown.some((n) => /^alice mentioned you/.test(n.title)), { what: 'the channel mention shown' });
    assert.equal(shown.length, 1, JSON.stringify(shown));
    assert.match(shown[0].body, /release notes please/);
    assert.deepEqual(world.alice.errors.concat(world.bob.errors), []);
  });
});
