// Communities in the web client (issue 14): an owner creates a community in the UI with
// channels and a Moderator role, invites two people who join through the invite link in their
// browsers, and grants one of them the role; the moderator times the other out (their composer
// is disabled and a send made by hand over the WebSocket is refused with FORBIDDEN); a private
// channel (an override denying view_channel to @everyone, allowing it to a role) disappears
// live and comes back when the role is granted; a ban removes the person live; the audit log
// shows it all, filtered by action and actor.
// Screenshots: community-channels, community-roles, community-members-menu,
// community-invites, community-audit.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { eventually, registerInUi, sendInUi, shot as rawShot, startWorld } from '../lib/harness.js';

/** A screenshot without the toasts of earlier steps over it. */
async function shot(page, name) {
  await page.evaluate(() => document.querySelector('.toasts')?.replaceChildren());
  await rawShot(page, name);
}

/** The channel names in the open community's list, in order. */
function channelNames(page) {
  return page.$$eval('.community-side .channel-item .room-link-name', (els) => els.map((e) => e.textContent));
}

/** Opens the community menu (the name at the top of the channel list) and picks an entry. */
async function menu(page, entry) {
  const name = page.locator('.community-name');
  if ((await name.getAttribute('aria-expanded')) !== 'true') await name.click();
  await page.locator('#community-menu').getByRole('button', { name: entry }).click();
}

/** Opens a member's menu in the member panel (a right click on their row). */
async function memberMenu(page, username) {
  const row = page.locator('.community-member', { has: page.locator('.member-name', { hasText: username }) });
  await row.waitFor();
  await row.click({ button: 'right' });
  const m = page.getByRole('menu', { name: `Actions for ${username}` });
  await m.waitFor();
  return m;
}

describe('communities', { timeout: 300_000 }, () => {
  let world; let owner; let mia; let tom;
  let communityId; let generalId; let staffId; let inviteLink;

  before(async () => {
    world = await startWorld('community', { people: ['owner', 'mia', 'tom'] });
    ({ owner, mia, tom } = world);
  });
  after(() => world?.close());

  it('creates a community with channels, a category and a Moderator role in the UI', async () => {
    const { page } = owner;
    await registerInUi(page, 'olive');
    await page.getByRole('button', { name: 'Create a community' }).click();
    const dlg = page.getByRole('dialog', { name: 'Create a community' });
    await dlg.getByLabel('Community name').fill('Rust Fans');
    await dlg.getByLabel('Description').fill('All things Rust.');
    await dlg.getByRole('button', { name: 'Create community' }).click();
    await page.waitForURL(/\/c\/\d+$/);
    await page.getByRole('link', { name: 'Rust Fans' }).waitFor();
    communityId = new URL(page.url()).pathname.split('/')[2];
    assert.match(communityId, /^\d+$/);
    assert.equal(await page.locator('.rail-item[data-community-id] .rail-icon').textContent(), 'RF', 'initials without an icon');
    await page.getByText('No channels yet').first().waitFor();

    await menu(page, 'Create a category');
    const cat = page.getByRole('dialog', { name: 'Create a category' });
    await cat.getByLabel('Category name').fill('Chat');
    await cat.getByRole('button', { name: 'Create category' }).click();
    await page.getByRole('heading', { name: 'Chat' }).waitFor();

    const createChannel = async (name, kind, category) => {
      await menu(page, 'Create a channel');
      const d = page.getByRole('dialog', { name: 'Create a channel' });
      await d.getByLabel('Channel name').fill(name);
      await d.getByLabel('Channel type').selectOption(kind);
      if (category) await d.getByLabel('Category').selectOption({ label: category });
      await d.getByRole('button', { name: 'Create channel' }).click();
      await page.getByRole('heading', { name, level: 1 }).waitFor();
      return new URL(page.url()).pathname.split('/')[3];
    };
    generalId = await createChannel('general', 'text', 'Chat');
    await createChannel('lounge', 'voice', 'Chat');
    staffId = await createChannel('staff', 'text', null);
    assert.deepEqual(await channelNames(page), ['staff', 'general', 'lounge']);
    // Channel settings: #staff keeps no history (recordMessages), as the form reads it back.
    const settings = async () => {
      await page.getByRole('button', { name: 'Channel settings' }).click();
      const d = page.getByRole('dialog', { name: 'Edit #staff' });
      await d.getByLabel('Keep message history').waitFor();
      return d;
    };
    let edit = await settings();
    assert.equal(await edit.getByLabel('Keep message history').isChecked(), true);
    await edit.getByLabel('Keep message history').uncheck();
    await edit.getByRole('button', { name: 'Save changes' }).click();
    await edit.waitFor({ state: 'detached' });
    edit = await settings();
    assert.equal(await edit.getByLabel('Keep message history').isChecked(), false);
    await edit.getByRole('button', { name: 'Cancel' }).click();
    // The channels are rooms: the composer works as in any room.
    await page.getByRole('link', { name: 'general' }).click();
    await page.getByRole('heading', { name: 'general', level: 1 }).waitFor();
    await sendInUi(page, 'Welcome to Rust Fans!');
    await page.locator('.msg-content', { hasText: 'Welcome to Rust Fans!' }).waitFor();
    // None of these channels show among the ordinary rooms.
    await page.getByRole('link', { name: 'Rooms and direct messages' }).click();
    await page.getByRole('heading', { name: 'Browse rooms' }).waitFor();
    assert.equal(await page.locator('.sidebar .side-scroll:not([hidden]) .room-link[data-room-id]').count(), 0);
    await page.getByRole('link', { name: 'Rust Fans' }).click();
    await page.getByRole('heading', { name: 'general', level: 1 }).waitFor();

    await menu(page, 'Roles');
    const roles = page.getByRole('dialog', { name: 'Roles of Rust Fans' });
    await roles.getByRole('button', { name: 'New role' }).click();
    await roles.getByLabel('Role name').fill('Moderator');
    await roles.getByLabel('Position').fill('2');
    await roles.getByLabel('Colour').fill('#e67e22');
    for (const p of ['Timeout members', 'Kick members', 'Ban members', 'View audit log']) {
      await roles.getByLabel(p, { exact: true }).check();
    }
    await roles.getByRole('button', { name: 'Create role' }).click();
    await roles.getByRole('button', { name: 'Moderator' }).waitFor();
    await roles.getByRole('button', { name: 'New role' }).click();
    await roles.getByLabel('Role name').fill('Staff');
    await roles.getByLabel('Colour').fill('#2ecc71');
    await roles.getByRole('button', { name: 'Create role' }).click();
    await roles.getByRole('button', { name: 'Staff' }).waitFor();
    // The editor shows the saved permissions of a role picked again.
    await roles.getByRole('button', { name: 'Moderator' }).click();
    assert.equal(await roles.getByLabel('Kick members', { exact: true }).isChecked(), true);
    assert.equal(await roles.getByLabel('Manage roles', { exact: true }).isChecked(), false);
    // Every permission name of PROTOCOL.md has a toggle.
    assert.equal(await roles.locator('input[name="perm"]').count(), 22);
    await shot(page, 'community-roles');
    await roles.getByRole('button', { name: 'Done' }).click();
  });

  it('invites two people who join through the invite link', async () => {
    const { page } = owner;
    await menu(page, 'Invite people');
    const dlg = page.getByRole('dialog', { name: 'Invite people to Rust Fans' });
    await dlg.getByLabel('Maximum uses').selectOption('5');
    await dlg.getByRole('button', { name: 'Create invite link' }).click();
    const link = dlg.getByLabel('Invite link');
    await link.waitFor();
    inviteLink = await link.inputValue();
    assert.match(inviteLink, /\/invite\/[A-Z0-9]+$/);
    await dlg.locator('.invite-row').first().waitFor();
    assert.match(await dlg.locator('.invite-row').first().textContent(), /0 of 5 uses/);
    await shot(page, 'community-invites');
    await dlg.getByRole('button', { name: 'Close' }).click();

    for (const [person, name] of [[mia, 'mia'], [tom, 'tom']]) {
      await registerInUi(person.page, name);
      await person.page.goto(inviteLink);
      await person.page.getByRole('heading', { name: 'Rust Fans', exact: true }).waitFor();
      await person.page.getByRole('button', { name: 'Join Rust Fans' }).click();
      await person.page.getByRole('heading', { name: 'general', level: 1 }).waitFor();
      assert.equal(new URL(person.page.url()).pathname, `/c/${communityId}/${generalId}`);
      assert.deepEqual(await channelNames(person.page), ['staff', 'general', 'lounge']);
      // A member without manage_community sees no settings, roles or channel controls.
      await person.page.locator('.community-name').click();
      const entries = await person.page.locator('#community-menu button').allTextContents();
      assert.deepEqual(entries, ['Invite people', 'Leave community']);
      await person.page.locator('.community-name').click();
      assert.equal(await person.page.locator('.channel-edit').count(), 0);
    }
    await tom.page.locator('.msg-content', { hasText: 'Welcome to Rust Fans!' }).waitFor();
  });

  it('grants the Moderator role from the member list', async () => {
    const { page } = owner;
    await page.locator('.community-member .member-name', { hasText: 'tom' }).waitFor();
    const m = await memberMenu(page, 'mia');
    await shot(page, 'community-members-menu');
    await m.getByRole('menuitemcheckbox', { name: 'Moderator' }).click();
    await page.locator('.community-member', { hasText: 'mia' }).locator('.role-chip', { hasText: 'Moderator' }).waitFor();
    await sendInUi(mia.page, 'Thanks for having me!');
  });

  it('a moderator times someone out: their composer is disabled and a send by hand is refused', async () => {
    // Mia's client reads her new rights when she opens the community again.
    await mia.page.getByRole('link', { name: 'Rust Fans' }).click();
    await eventually(async () => {
      const m = await memberMenu(mia.page, 'tom');
      const ok = await m.getByRole('menuitem', { name: 'Time out…' }).count();
      if (!ok) await mia.page.keyboard.press('Escape');
      return ok;
    }, { what: "the moderator's Time out entry" });
    await mia.page.getByRole('menuitem', { name: 'Time out…' }).click();
    const dlg = mia.page.getByRole('dialog', { name: 'Time out tom' });
    await dlg.getByLabel('Duration').selectOption('3600');
    await dlg.getByLabel('Reason (optional)').fill('spamming');
    await dlg.getByRole('button', { name: 'Time out' }).click();
    await mia.page.locator('.community-member', { hasText: 'tom' }).locator('.tag-timeout').waitFor();

    // Tom's client hears that his rights changed (community:member_updated) and reads them
    // again: the composer is disabled and says why, before he tries anything.
    const { page } = tom;
    const box = page.locator('#composer');
    await eventually(() => box.isDisabled(), { what: "the timed-out person's composer disabled" });
    assert.match(await page.locator('.composer-note').textContent(), /timed out until/);
    await page.locator('.community-timeout').waitFor();
    // A send made by hand over the client's own WebSocket is refused too.
    const code = await page.evaluate((roomId) => window.__voiceflow.socket
      .request('message:send', { roomId, content: 'by hand', nonce: 'hand-made-1' })
      .then(() => 'sent', (e) => e.code), generalId);
    assert.equal(code, 'FORBIDDEN');
    const rest = await page.evaluate(async (roomId) => {
      const { token } = JSON.parse(localStorage.getItem('vf.session'));
      const r = await fetch('/api/v1/messages', {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ roomId, content: 'over REST' }),
      });
      return { status: r.status, code: (await r.json()).error?.code };
    }, generalId);
    assert.deepEqual(rest, { status: 403, code: 'FORBIDDEN' });
    await page.getByRole('link', { name: 'staff' }).waitFor();
  });

  it('a private channel disappears live and comes back when its role is granted', async () => {
    const { page } = owner;
    await page.getByRole('link', { name: 'staff' }).click();
    await page.getByRole('heading', { name: 'staff', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Channel permissions' }).click();
    const dlg = page.getByRole('dialog', { name: 'Permissions of #staff' });
    const add = dlg.getByLabel('Add an override for');
    await add.selectOption({ label: '@everyone' });
    await dlg.getByRole('radiogroup', { name: 'View channel' }).getByLabel('Deny').check();
    await dlg.getByRole('button', { name: 'Save override' }).click();
    await dlg.getByRole('button', { name: '@everyone' }).waitFor();
    // Tom was subscribed to #staff: room:removed takes it off his list at once.
    await eventually(async () => !(await channelNames(tom.page)).includes('staff'), { what: 'staff gone for tom' });
    assert.deepEqual(await channelNames(tom.page), ['general', 'lounge']);

    await add.selectOption({ label: 'Staff' });
    await dlg.getByRole('radiogroup', { name: 'View channel' }).getByLabel('Allow').check();
    await dlg.getByRole('radiogroup', { name: 'Send messages' }).getByLabel('Allow').check();
    await dlg.getByRole('button', { name: 'Save override' }).click();
    await dlg.getByRole('button', { name: 'Staff' }).waitFor();
    await dlg.getByRole('button', { name: 'Done' }).click();
    // The owner still sees it (owners pass every override).
    assert.ok((await channelNames(page)).includes('staff'));

    const m = await memberMenu(page, 'tom');
    await m.getByRole('menuitemcheckbox', { name: 'Staff' }).click();
    await page.locator('.community-member', { hasText: 'tom' }).locator('.role-chip', { hasText: 'Staff' }).waitFor();
    // The server tells nobody about a channel that became visible: tom's client finds it when
    // it reads the list again (here: opening the community).
    await tom.page.getByRole('link', { name: 'Rust Fans' }).click();
    await eventually(async () => (await channelNames(tom.page)).includes('staff'), { what: 'staff back for tom' });
    await page.getByRole('link', { name: 'general' }).click();
    await page.locator('.msg-content', { hasText: 'Thanks for having me' }).waitFor();
    await shot(page, 'community-channels');
  });

  it('a ban removes the person live', async () => {
    const { page } = owner;
    await page.getByRole('link', { name: 'general' }).click();
    const m = await memberMenu(page, 'tom');
    await m.getByRole('menuitem', { name: 'Ban…' }).click();
    const dlg = page.getByRole('dialog', { name: 'Ban tom' });
    await dlg.getByLabel('Delete their messages').selectOption('86400');
    await dlg.getByLabel('Reason (optional)').fill('repeated spam');
    await dlg.getByRole('button', { name: 'Ban' }).click();
    await eventually(async () => (await page.locator('.community-member', { hasText: 'tom' }).count()) === 0,
      { what: 'tom off the member list' });

    await eventually(async () => (await tom.page.locator('.rail-item[data-community-id]').count()) === 0,
      { what: 'the community gone from tom\'s rail' });
    await eventually(() => !new URL(tom.page.url()).pathname.startsWith('/c/'), { what: 'tom out of the channel' });
    assert.equal(await tom.page.locator('.community-side .channel-item').count(), 0);
    // The invite no longer lets him in.
    await tom.page.goto(inviteLink);
    await tom.page.getByRole('button', { name: 'Join Rust Fans' }).click();
    await tom.page.getByText('you are banned').waitFor();
  });

  it('shows the audit log with action and actor filters', async () => {
    const { page } = owner;
    await menu(page, 'Audit log');
    await page.getByRole('heading', { name: 'Audit log · Rust Fans' }).waitFor();
    const actions = () => page.$$eval('.audit-entry', (els) => els.map((e) => e.dataset.action));
    await eventually(async () => (await actions()).includes('member.ban'), { what: 'the ban in the log' });
    const all = await actions();
    for (const a of ['channel.create', 'role.create', 'member.role_add', 'member.timeout', 'invite.create',
      'channel.overwrite.update', 'category.create']) {
      assert.ok(all.includes(a), `${a} in ${all}`);
    }
    const ban = page.locator('.audit-entry[data-action="member.ban"]');
    assert.match(await ban.textContent(), /repeated spam/);
    // The banned person is named (from the ban list: no longer a member).
    await ban.locator('.audit-target', { hasText: 'tom' }).waitFor();
    await shot(page, 'community-audit');

    await page.getByLabel('Action').selectOption('member.timeout');
    await eventually(async () => {
      const a = await actions();
      return a.length === 1 && a[0] === 'member.timeout';
    }, { what: 'only the timeout' });
    assert.match(await page.locator('.audit-entry').textContent(), /spamming/);
    await page.getByLabel('Action').selectOption('');
    await page.getByLabel('Actor').selectOption({ label: 'mia' });
    await eventually(async () => {
      const a = await actions();
      return a.length >= 1 && a.every((x) => x === 'member.timeout');
    }, { what: "only mia's entries" });
  });

  it('the moderator sees no management controls and no page errors happened', async () => {
    await mia.page.locator('.community-name').click();
    const entries = await mia.page.locator('#community-menu button').allTextContents();
    assert.deepEqual(entries, ['Invite people', 'Join requests', 'Audit log', 'Leave community']);
    for (const p of [owner, mia, tom]) assert.deepEqual(p.errors, []);
  });
});
