// A community's member list (the member panel of its channels): pages of 100 by user id
// (`after`), the next one loaded when the list is scrolled near its end; a search box asks the
// server for the members whose name starts with what is typed (`?prefix=`, an index read, paged
// by its `nextAfter` cursor), so a community of 100,000 is never loaded to be filtered. Each row shows role
// chips (in the role's colour), a timeout and server mute / deafen marks, and opens a menu
// (its "…" button, or a right click) with what this user may do to that member: grant or
// remove roles, time out, kick, ban (with a reason and how much of their history to delete),
// server mute / deafen, move to another voice channel or disconnect.

import { avatar, h, icon } from '../dom.js';
import { colorHex, paintDots } from './community-roles.js';
import { modal } from './dialog.js';

const PAGE = 100;

const TIMEOUTS = [[60, '60 seconds'], [300, '5 minutes'], [600, '10 minutes'], [3600, '1 hour'],
  [86400, '1 day'], [604800, '1 week']];
const DELETE_SPANS = [[0, 'Don\u2019t delete any'], [3600, 'Previous hour'], [21600, 'Previous 6 hours'],
  [86400, 'Previous 24 hours'], [259200, 'Previous 3 days'], [604800, 'Previous 7 days']];

export function communityMembersPanel({ c, communities, api, store, me, toast }) {
  const el = h('div', { class: 'community-members' });
  const search = h('input', { type: 'search', class: 'member-search', placeholder: 'Search members',
    'aria-label': 'Search members', autocomplete: 'off', maxlength: '32' });
  const listEl = h('ul', { class: 'member-list', 'aria-label': 'Members' });
  const more = h('p', { class: 'members-loading', role: 'status' });
  el.append(search, listEl, more);
  /** userId → member, in the order the server pages them (user id, or name when searching). */
  const members = new Map();
  let hasMore = true;
  let loading = false;
  let menu = null;
  /** The search (empty: everyone by user id), its next cursor, and which search is current. */
  let prefix = '';
  let cursor;
  let generation = 0;

  async function loadMore() {
    if (loading || !hasMore) return;
    loading = true;
    const mine = generation;
    more.textContent = 'Loading members…';
    try {
      const page = prefix
        ? await api.communityMembers(c.id, { prefix, after: cursor, limit: PAGE })
        : await api.communityMembers(c.id, { after: [...members.keys()].pop(), limit: PAGE });
      // A page of a search that was replaced meanwhile is dropped.
      if (mine === generation) {
        for (const m of page.data) note(m);
        cursor = page.nextAfter;
        hasMore = page.hasMore && page.data.length > 0;
        render();
      }
    } catch (err) {
      if (mine === generation) {
        more.textContent = `Could not load members: ${err.message}`;
        return;
      }
    } finally {
      loading = false;
    }
    if (mine !== generation) {
      // The current search asked while this page was on its way: load it now.
      loadMore();
      return;
    }
    more.textContent = members.size || hasMore ? '' : 'Nobody by that name.';
    // Still room on screen: load on.
    if (hasMore && el.scrollHeight <= el.clientHeight + 40) loadMore();
  }

  let typing = null;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      const next = search.value.trim();
      if (next === prefix) return;
      prefix = next;
      generation += 1;
      members.clear();
      cursor = undefined;
      hasMore = true;
      render();
      loadMore();
    }, 200);
  });

  // The panel scrolls (the aside's body): load the next page near the end.
  const onScroll = () => {
    if (el.scrollTop + el.clientHeight >= el.scrollHeight - 200) loadMore();
  };
  el.addEventListener('scroll', onScroll);

  const roleOf = (id) => c.roles.find((r) => r.id === id);
  /** Keeps a member of a page (and what it says of their server mute / deafen). */
  function note(m) {
    members.set(m.userId, m);
    communities.noteModeration(c.id, m.userId, { mute: m.voiceMuted, deafen: m.voiceDeafened });
  }

  function render() {
    const focused = listEl.contains(document.activeElement) ? document.activeElement.closest('[data-user-id]')?.dataset.userId : null;
    listEl.replaceChildren(...[...members.values()].map(row));
    el.dataset.count = String(members.size);
    el.dataset.complete = String(!hasMore);
    paintDots(listEl);
    if (focused) listEl.querySelector(`[data-user-id="${CSS.escape(focused)}"] .member-more`)?.focus();
  }

  function row(m) {
    const name = m.username || 'deleted account';
    const timedOut = m.timedOutUntil && new Date(m.timedOutUntil).getTime() > Date.now();
    const chips = (m.roles || []).map(roleOf).filter((r) => r && !r.everyone)
      .sort((a, b) => b.position - a.position)
      .map((r) => h('span', { class: 'role-chip', dataset: { color: colorHex(r.color), roleId: r.id } },
        h('span', { class: 'role-dot', dataset: { color: colorHex(r.color) } }), r.name));
    const li = h('li', { class: 'member community-member', dataset: { userId: m.userId } },
      h('span', { class: 'member-avatar' }, avatar(m.userId, name, 'avatar-sm')),
      h('span', { class: 'member-main' },
        h('span', { class: 'member-name', text: name },
          m.userId === me.id ? h('span', { class: 'member-you', text: ' (you)' }) : null,
          c.meta?.ownerId === m.userId ? h('span', { class: 'tag tag-admin', text: 'owner' }) : null),
        h('span', { class: 'role-chips' }, ...chips,
          timedOut ? h('span', { class: 'tag tag-timeout', text: 'timed out', title: `Until ${new Date(m.timedOutUntil).toLocaleString()}` }) : null,
          m.voiceMuted ? h('span', { class: 'tag tag-voice', text: 'server muted' }) : null,
          m.voiceDeafened ? h('span', { class: 'tag tag-voice', text: 'server deafened' }) : null)),
      h('button', {
        class: 'icon-btn member-more', type: 'button', 'aria-haspopup': 'menu', 'aria-label': `Actions for ${name}`,
        title: 'Actions', onclick: (e) => openMenu(m, e.currentTarget),
      }, icon('menu')));
    li.addEventListener('contextmenu', (e) => {
      e.preventDefault();
      openMenu(m, li.querySelector('.member-more'), { x: e.clientX, y: e.clientY });
    });
    return li;
  }

  function closeMenu(focusBack = true) {
    if (!menu) return;
    const { el: m, anchor } = menu;
    menu = null;
    m.remove();
    document.removeEventListener('pointerdown', onOutside, true);
    if (focusBack && document.contains(anchor)) anchor.focus();
  }
  const onOutside = (e) => { if (menu && !menu.el.contains(e.target)) closeMenu(false); };

  function openMenu(m, anchor, at = null) {
    closeMenu(false);
    const can = (p) => c.can(p, me.id);
    const self = m.userId === me.id;
    const name = m.username || 'this member';
    const items = [];
    const item = (label, run, { danger = false, checked = null } = {}) => items.push(h('button', {
      class: `menu-item${danger ? ' danger' : ''}`, type: 'button',
      role: checked === null ? 'menuitem' : 'menuitemcheckbox',
      'aria-checked': checked === null ? null : String(checked),
      onclick: async () => { closeMenu(); await run(); },
    }, checked === null ? null : h('span', { class: 'menu-check', 'aria-hidden': 'true', text: checked ? '✓' : '' }), label));
    const heading = (text) => items.push(h('p', { class: 'menu-heading', role: 'presentation', text }));
    if (can('manage_roles')) {
      const roles = c.roles.filter((r) => !r.everyone).sort((a, b) => b.position - a.position);
      if (roles.length) heading('Roles');
      for (const r of roles) {
        const has = (m.roles || []).includes(r.id);
        item(r.name, () => act(`${has ? 'Removed' : 'Granted'} ${r.name}`,
          async () => { await communities.setMemberRole(c.id, m.userId, r.id, !has); }), { checked: has });
      }
    }
    if (!self) {
      heading('Moderation');
      if (can('timeout_members')) {
        item('Time out…', () => timeoutDialog(m));
        if (m.timedOutUntil && new Date(m.timedOutUntil).getTime() > Date.now()) {
          item('Remove timeout', () => act(`Timeout of ${name} lifted`, () => api.timeout(c.id, m.userId, 0)));
        }
      }
      if (can('mute_members')) {
        item(m.voiceMuted ? 'Server unmute' : 'Server mute',
          () => act(`${name} ${m.voiceMuted ? 'unmuted' : 'muted'}`, () => communities.moderateVoice(c.id, m.userId, { mute: !m.voiceMuted })));
      }
      if (can('deafen_members')) {
        item(m.voiceDeafened ? 'Server undeafen' : 'Server deafen',
          () => act(`${name} ${m.voiceDeafened ? 'undeafened' : 'deafened'}`, () => communities.moderateVoice(c.id, m.userId, { deafen: !m.voiceDeafened })));
      }
      // Moves need the voice channel they are in now (as the sidebar shows it).
      const voiceChannels = c.channels.filter((ch) => ch.kind === 'voice' || ch.kind === 'stage');
      const from = voiceChannels.find((ch) => store.room(ch.id)?.voiceMembers.has(m.userId));
      if (from && can('move_members')) {
        for (const ch of voiceChannels.filter((x) => x.id !== from.id)) {
          item(`Move to ${ch.name}`, () => act(`${name} moved to ${ch.name}`, () => api.voiceMove(c.id, m.userId, from.id, ch.id)));
        }
        item('Disconnect from voice', () => act(`${name} disconnected`, () => api.voiceMove(c.id, m.userId, from.id)));
      }
      if (can('kick_members')) item('Kick…', () => kickDialog(m), { danger: true });
      if (can('ban_members')) item('Ban…', () => banDialog(m), { danger: true });
    }
    if (!items.some((x) => x.tagName === 'BUTTON')) items.push(h('p', { class: 'menu-heading', text: 'Nothing you can do here.' }));
    const box = h('div', { class: 'context-menu', role: 'menu', 'aria-label': `Actions for ${name}`, tabindex: '-1' }, ...items);
    box.addEventListener('keydown', (e) => {
      const buttons = [...box.querySelectorAll('button')];
      const i = buttons.indexOf(document.activeElement);
      if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); closeMenu(); }
      else if (e.key === 'ArrowDown') { e.preventDefault(); buttons[(i + 1) % buttons.length]?.focus(); }
      else if (e.key === 'ArrowUp') { e.preventDefault(); buttons[(i - 1 + buttons.length) % buttons.length]?.focus(); }
      else if (e.key === 'Tab') closeMenu(false);
    });
    document.body.append(box);
    const r = anchor.getBoundingClientRect();
    const x = at ? at.x : r.right - 4;
    const y = at ? at.y : r.bottom + 4;
    const w = box.offsetWidth;
    const hgt = box.offsetHeight;
    box.style.setProperty('--menu-x', `${Math.max(8, Math.min(x - (at ? 0 : w), innerWidth - w - 8))}px`);
    box.style.setProperty('--menu-y', `${Math.max(8, Math.min(y, innerHeight - hgt - 8))}px`);
    menu = { el: box, anchor };
    document.addEventListener('pointerdown', onOutside, true);
    (box.querySelector('button') || box).focus();
  }

  /** Runs a moderation call, then reads the member again. */
  async function act(done, run) {
    try {
      await run();
      toast(`${done}.`);
    } catch (err) {
      toast(`Could not do that: ${err.message}`);
    }
    await refreshMember();
  }

  async function refreshMember() {
    // Re-read the pages loaded so far (roles and timeouts changed).
    const count = members.size;
    members.clear();
    hasMore = true;
    while (hasMore && members.size < Math.max(count, 1)) {
      const last = [...members.keys()].pop();
      const page = await api.communityMembers(c.id, { after: last, limit: PAGE }).catch(() => null);
      if (!page) break;
      for (const m of page.data) note(m);
      hasMore = page.hasMore && page.data.length > 0;
    }
    render();
  }

  function reasonDialog({ title, intro, confirm, extra = null, run }) {
    return modal({
      title,
      className: 'dialog-form',
      build: (close) => {
        const error = h('p', { class: 'form-error', role: 'alert' });
        const form = h('form', { class: 'dialog-body form' },
          h('p', { text: intro }),
          extra,
          h('div', { class: 'field' }, h('label', { for: 'mod-reason' }, 'Reason (optional)'),
            h('input', { id: 'mod-reason', name: 'reason', maxlength: '512', autocomplete: 'off' })),
          error,
          h('div', { class: 'dialog-actions' },
            h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => close(null) }, 'Cancel'),
            h('button', { class: 'btn btn-danger', type: 'submit' }, confirm)));
        form.addEventListener('submit', async (e) => {
          e.preventDefault();
          const data = new FormData(form);
          try {
            await run(data, String(data.get('reason') || '').trim() || undefined);
            close(true);
          } catch (err) {
            error.textContent = err.message;
          }
        });
        return form;
      },
    });
  }

  async function timeoutDialog(m) {
    const done = await reasonDialog({
      title: `Time out ${m.username}`,
      intro: 'They can read, but not send, react, speak or join voice until it ends.',
      confirm: 'Time out',
      extra: h('div', { class: 'field' }, h('label', { for: 'mod-duration' }, 'Duration'),
        h('select', { id: 'mod-duration', name: 'secs' }, ...TIMEOUTS.map(([v, l]) => h('option', { value: String(v) }, l)))),
      run: (data, reason) => api.timeout(c.id, m.userId, Number(data.get('secs')), reason),
    });
    if (done) {
      toast(`${m.username} was timed out.`);
      await refreshMember();
    }
  }

  async function kickDialog(m) {
    const done = await reasonDialog({
      title: `Kick ${m.username}`,
      intro: `${m.username} leaves ${c.name}; they can come back with an invite.`,
      confirm: 'Kick',
      run: (_data, reason) => api.kick(c.id, m.userId, reason),
    });
    if (done) {
      toast(`${m.username} was kicked.`);
      members.delete(m.userId);
      render();
    }
  }

  async function banDialog(m) {
    const done = await reasonDialog({
      title: `Ban ${m.username}`,
      intro: `${m.username} leaves ${c.name} and cannot join again.`,
      confirm: 'Ban',
      extra: h('div', { class: 'field' }, h('label', { for: 'mod-delete' }, 'Delete their messages'),
        h('select', { id: 'mod-delete', name: 'deleteMessageSecs' }, ...DELETE_SPANS.map(([v, l]) => h('option', { value: String(v) }, l)))),
      run: (data, reason) => api.ban(c.id, m.userId, { deleteMessageSecs: Number(data.get('deleteMessageSecs')), reason }),
    });
    if (done) {
      toast(`${m.username} was banned.`);
      members.delete(m.userId);
      render();
    }
  }

  // Someone's first visit to a channel (room:user_joined) may be a new member: read the list
  // again, at most every second.
  let refreshTimer = 0;
  const unsubMembers = store.on('members', ({ roomId }) => {
    if (store.room(roomId)?.communityId !== c.id || refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = 0;
      if (!hasMore) refreshMember();
    }, 1000);
  });
  const unsubC = store.on('communities', (d) => { if (d.id === c.id) render(); });
  const unsub = () => { unsubC(); unsubMembers(); clearTimeout(refreshTimer); };
  loadMore();
  return {
    el,
    refresh: refreshMember,
    destroy: () => { unsub(); closeMenu(false); el.removeEventListener('scroll', onScroll); },
  };
}
