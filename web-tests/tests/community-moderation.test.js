// Communities, continued (issue 14): join approval and voice moderation in the web client.
// The owner turns on "Require approval" in the UI; someone who opens an invite link asks to
// join, the owner sees the request live and accepts it, and the requester's client loads the
// community by itself. Then, in voice (Chromium's fake microphone): a server mute shows on the
// voice tiles, apart from self-mute (the server reports it as `muted`; the client knows it is a
// moderator's from the member list and voice:moderated), and a move lands the person in the
// other voice channel.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { eventually, registerInUi, rest, restLogin, shot, startWorld } from '../lib/harness.js';

async function memberMenu(page, username) {
  const row = page.locator('.community-member', { has: page.locator('.member-name', { hasText: username }) });
  await row.waitFor();
  await row.click({ button: 'right' });
  const m = page.getByRole('menu', { name: `Actions for ${username}` });
  await m.waitFor();
  return m;
}

describe('community join approval and voice moderation', { timeout: 240_000 }, () => {
  let world; let owner; let rita; let url;
  let communityId; let generalId; let lobbyId; let inviteLink;

  before(async () => {
    world = await startWorld('community-mod', { media: true, people: ['owner', 'rita'] });
    ({ owner, rita } = world);
    url = world.node.url;
  });
  after(() => world?.close());

  it('asks to join, is accepted by the owner, and sees the community', async () => {
    await registerInUi(owner.page, 'owen');
    const { token } = await restLogin(url, 'owen');
    const c = await rest(url, 'POST', '/communities', { token, body: { name: 'Approvals' } });
    communityId = c.body.data.id;
    const mk = async (name, kind) => (await rest(url, 'POST', `/communities/${communityId}/channels`,
      { token, body: { name, kind } })).body.data.id;
    generalId = await mk('general', 'text');
    await mk('lounge', 'voice');
    lobbyId = await mk('lobby', 'voice');
    const inv = await rest(url, 'POST', `/communities/${communityId}/invites`, { token, body: {} });
    inviteLink = `${url}/invite/${inv.body.data.code}`;

    const { page } = owner;
    await page.goto(`/c/${communityId}`);
    await page.getByRole('heading', { name: 'general', level: 1 }).waitFor();
    await page.locator('.community-name').click();
    await page.locator('#community-menu').getByRole('button', { name: 'Community settings' }).click();
    const dlg = page.getByRole('dialog', { name: 'Community settings' });
    await dlg.getByLabel('Require approval to join').check();
    await dlg.getByRole('button', { name: 'Save changes' }).click();
    await dlg.waitFor({ state: 'detached' });
    const after_ = await rest(url, 'GET', `/communities/${communityId}`, { token });
    assert.equal(after_.body.data.requireApproval, true);

    await registerInUi(rita.page, 'rita');
    await rita.page.goto(inviteLink);
    await rita.page.getByRole('button', { name: 'Ask to join Approvals' }).click();
    await rita.page.getByText('Your request to join was sent').waitFor();
    assert.equal(await rita.page.locator('.rail-item[data-community-id]').count(), 0);

    // The owner hears of it live: a badge on the rail and in the menu.
    await page.locator(`.rail-item[data-community-id="${communityId}"] .rail-badge`, { hasText: '1' }).waitFor();
    await page.locator('.community-name').click();
    await page.locator('#community-menu').getByRole('button', { name: 'Join requests (1)' }).click();
    await page.getByRole('heading', { name: 'Join requests · Approvals' }).waitFor();
    await page.locator('.request', { hasText: 'rita' }).waitFor();
    await page.getByRole('button', { name: 'Accept rita' }).click();
    await page.getByText('No pending requests.').waitFor();

    // Rita's client loads the community when it hears the decision.
    await rita.page.getByRole('link', { name: 'Approvals' }).click();
    await rita.page.getByRole('heading', { name: 'general', level: 1 }).waitFor();
    const names = await rita.page.$$eval('.community-side .channel-item .room-link-name', (els) => els.map((e) => e.textContent));
    assert.deepEqual(names.sort(), ['general', 'lobby', 'lounge']);
  });

  it('shows a server mute on the voice tiles, apart from self-mute', async () => {
    for (const p of [owner.page, rita.page]) {
      await p.getByRole('link', { name: 'lounge' }).click();
      await p.getByRole('heading', { name: 'lounge', level: 1 }).waitFor();
      await p.getByRole('button', { name: 'Join voice channel' }).click();
      await p.getByRole('button', { name: 'Leave voice channel' }).waitFor();
    }
    const ritaTile = (p) => p.locator('.voice-tiles .voice-tile', { hasText: 'rita' });
    await ritaTile(owner.page).waitFor();

    const m = await memberMenu(owner.page, 'rita');
    await m.getByRole('menuitem', { name: 'Server mute' }).click();
    for (const p of [owner.page, rita.page]) {
      await ritaTile(p).locator('[data-state="server-muted"]').waitFor();
      // Not the same as muting oneself.
      assert.equal(await ritaTile(p).locator('[data-state="muted"]').count(), 0);
    }
    await owner.page.locator('.community-member', { hasText: 'rita' }).locator('.tag-voice', { hasText: 'server muted' }).waitFor();
    await owner.page.evaluate(() => document.querySelector('.toasts')?.replaceChildren());
    await shot(owner.page, 'community-voice-server-muted');

    // Lifting it takes the mark away again.
    const m1 = await memberMenu(owner.page, 'rita');
    await m1.getByRole('menuitem', { name: 'Server unmute' }).click();
    for (const p of [owner.page, rita.page]) {
      await eventually(async () => (await ritaTile(p).locator('[data-state="server-muted"]').count()) === 0,
        { what: 'the server mute lifted' });
    }
    for (const p of [owner, rita]) assert.deepEqual(p.errors, []);
  });

  it('pages the member list as it scrolls and the audit log with "Load older entries"', async () => {
    const { token } = await restLogin(url, 'owen');
    await rest(url, 'PATCH', `/communities/${communityId}`, { token, body: { requireApproval: false } });
    const code = inviteLink.split('/').pop();
    // 110 more members (two pages of the member list) and 55 more audit entries (invites).
    await Promise.all(Array.from({ length: 110 }, async (_, i) => {
      const who = await restLogin(url, `member${String(i).padStart(3, '0')}`);
      const r = await rest(url, 'POST', `/invites/${code}/join`, { token: who.token });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }));
    for (let i = 0; i < 55; i++) {
      const r = await rest(url, 'POST', `/communities/${communityId}/invites`, { token, body: {} });
      assert.equal(r.status, 201);
    }

    const { page } = owner;
    await page.getByRole('link', { name: 'general' }).click();
    await page.getByRole('heading', { name: 'general', level: 1 }).waitFor();
    await page.goto(`/c/${communityId}/${generalId}`); // a fresh member list
    const panel = page.locator('.community-members');
    await panel.waitFor({ state: 'attached' });
    await eventually(async () => (await panel.getAttribute('data-count')) === '100', { what: 'the first page' });
    assert.equal(await panel.getAttribute('data-complete'), 'false');
    await panel.evaluate((el) => { el.scrollTop = el.scrollHeight; });
    await eventually(async () => (await panel.getAttribute('data-count')) === '112', { what: 'the second page on scroll' });
    assert.equal(await panel.getAttribute('data-complete'), 'true');
    assert.equal(await page.locator('.community-member').count(), 112);
    // The search asks the server by name prefix: member010 … member019, then back to all.
    const search = page.getByRole('searchbox', { name: 'Search members' });
    await search.fill('MEMBER01');
    await eventually(async () => (await panel.getAttribute('data-count')) === '10', { what: 'ten matches' });
    assert.deepEqual(await page.locator('.community-member .member-name').allTextContents(),
      Array.from({ length: 10 }, (_, i) => `member01${i}`));
    await search.fill('nobody-here');
    await page.locator('.members-loading', { hasText: 'Nobody by that name.' }).waitFor();
    await search.fill('');
    await eventually(async () => (await panel.getAttribute('data-count')) === '100', { what: 'everyone again' });

    await page.locator('.community-name').click();
    await page.locator('#community-menu').getByRole('button', { name: 'Audit log' }).click();
    const entries = page.locator('.audit-entry');
    await eventually(async () => (await entries.count()) === 50, { what: 'the first audit page' });
    await page.getByRole('button', { name: 'Load older entries' }).click();
    await eventually(async () => (await entries.count()) > 50, { what: 'older entries' });
    await page.getByRole('button', { name: 'Load older entries' }).waitFor({ state: 'hidden' });
    const actions = await page.$$eval('.audit-entry', (els) => els.map((e) => e.dataset.action));
    for (const a of ['member.join_accept', 'member.voice', 'community.update', 'channel.create']) {
      assert.ok(actions.includes(a), `${a} in the log`);
    }
    assert.equal(actions.filter((a) => a === 'invite.create').length, 56);
  });

  it('follows a move to another voice channel, and a disconnect', async () => {
    const ritaTile = (p) => p.locator('.voice-tiles .voice-tile', { hasText: 'rita' });
    await owner.page.getByRole('link', { name: 'lounge' }).click();
    await owner.page.getByRole('heading', { name: 'lounge', level: 1 }).waitFor();
    await ritaTile(owner.page).waitFor();
    const m2 = await memberMenu(owner.page, 'rita');
    await m2.getByRole('menuitem', { name: 'Move to lobby' }).click();
    await eventually(async () => (await rita.page.evaluate(() => window.__voiceflow.voice.channelId)) === lobbyId,
      { what: "rita's voice in lobby" });
    await rita.page.waitForURL(`**/c/${communityId}/${lobbyId}`);
    await rita.page.getByRole('heading', { name: 'lobby', level: 1 }).waitFor();
    await rita.page.getByRole('button', { name: 'Leave voice channel' }).waitFor();
    // The owner sees her leave the lounge and sit in the lobby.
    await eventually(async () => (await ritaTile(owner.page).count()) === 0, { what: 'rita out of the lounge' });
    await owner.page.locator(`.channel-item[data-channel-id="${lobbyId}"] .side-voice-member`, { hasText: 'rita' }).waitFor();
    // Disconnected by a moderator: out of voice, still in the community.
    const m3 = await memberMenu(owner.page, 'rita');
    assert.equal(await m3.getByRole('menuitem', { name: 'Move to lobby' }).count(), 0, 'no move to where she is');
    await m3.getByRole('menuitem', { name: 'Disconnect from voice' }).click();
    await eventually(async () => (await rita.page.evaluate(() => window.__voiceflow.voice.channelId)) === null,
      { what: 'rita disconnected' });
    await rita.page.getByRole('button', { name: 'Join voice channel' }).waitFor();
    for (const p of [owner, rita]) assert.deepEqual(p.errors, []);
  });
});
