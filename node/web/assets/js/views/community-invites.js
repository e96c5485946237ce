// Invites: the dialog to create one (expiry, maximum uses) and copy its link, with the list of
// every invite and a Revoke button for managers (`manage_community`); and the /invite/<code>
// page: the community's preview (GET /invites/:code) and a Join button (or "Ask to join"
// where joins need approval).

import { formatFull, h, icon } from '../dom.js';
import { initials } from './community-side.js';
import { modal } from './dialog.js';

const EXPIRY = [['1800', '30 minutes'], ['3600', '1 hour'], ['21600', '6 hours'], ['86400', '1 day'],
  ['604800', '7 days'], ['', 'Never']];
const USES = [['', 'No limit'], ['1', '1 use'], ['5', '5 uses'], ['10', '10 uses'], ['25', '25 uses'], ['100', '100 uses']];

export const inviteLink = (code) => `${location.origin}/invite/${code}`;

async function copy(text, toastLine) {
  try {
    await navigator.clipboard.writeText(text);
    toastLine.textContent = 'Link copied.';
  } catch {
    toastLine.textContent = 'Copy the link from the box above.';
  }
}

export function invitesDialog({ c, api, me }) {
  const manager = c.can('manage_community', me.id);
  return modal({
    title: `Invite people to ${c.name}`,
    className: 'dialog-wide invites-dialog',
    build: () => {
      const result = h('div', { class: 'invite-result', hidden: true });
      const listBox = h('div', { class: 'invite-list' });
      const expiry = h('select', { id: 'inv-expiry', name: 'expiry' },
        ...EXPIRY.map(([v, l]) => h('option', { value: v, selected: v === '604800' }, l)));
      const uses = h('select', { id: 'inv-uses', name: 'uses' }, ...USES.map(([v, l]) => h('option', { value: v }, l)));
      const error = h('p', { class: 'form-error', role: 'alert' });
      const form = h('form', { class: 'form invite-form' },
        h('div', { class: 'field-row' },
          h('div', { class: 'field' }, h('label', { for: 'inv-expiry' }, 'Expires after'), expiry),
          h('div', { class: 'field' }, h('label', { for: 'inv-uses' }, 'Maximum uses'), uses)),
        error,
        h('div', { class: 'dialog-actions' }, h('button', { class: 'btn btn-primary', type: 'submit' }, 'Create invite link')));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        error.textContent = '';
        const body = {};
        if (expiry.value) body.expiresInSecs = Number(expiry.value);
        if (uses.value) body.maxUses = Number(uses.value);
        try {
          const inv = await api.createInvite(c.id, body);
          const line = h('p', { class: 'field-hint', role: 'status' });
          const link = inviteLink(inv.code);
          result.hidden = false;
          result.replaceChildren(
            h('label', { for: 'inv-link', class: 'invite-result-label' }, 'Invite link'),
            h('div', { class: 'invite-link-row' },
              h('input', { id: 'inv-link', class: 'code-display', readonly: true, value: link, dataset: { code: inv.code } }),
              h('button', { class: 'btn btn-primary', type: 'button', onclick: () => copy(link, line) }, icon('copy'), 'Copy')),
            h('p', { class: 'field-hint', text: describe(inv) }),
            line);
          result.querySelector('input').select();
          if (manager) await loadList();
        } catch (err) {
          error.textContent = err.message;
        }
      });

      async function loadList() {
        const list = await api.invites(c.id);
        list.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
        listBox.replaceChildren(
          h('h3', { class: 'members-title', text: `Invites — ${list.length}` }),
          h('ul', { class: 'invite-rows', 'aria-label': 'Invites' }, ...list.map((inv) => h('li', {
            class: `invite-row${inv.revoked ? ' revoked' : ''}`, dataset: { code: inv.code },
          },
          h('code', { text: inv.code }),
          h('span', { class: 'invite-meta', text: describe(inv) }),
          inv.revoked ? h('span', { class: 'tag', text: 'revoked' }) : h('button', {
            class: 'btn btn-small btn-danger', type: 'button', 'aria-label': `Revoke invite ${inv.code}`,
            onclick: async (e) => {
              e.target.disabled = true;
              try {
                await api.revokeInvite(c.id, inv.code);
                await loadList();
              } catch (err) {
                error.textContent = err.message;
                e.target.disabled = false;
              }
            },
          }, 'Revoke')))));
      }
      if (manager) loadList().catch((err) => { error.textContent = err.message; });
      return h('div', { class: 'dialog-body' }, form, result, listBox);
    },
  });
}

function describe(inv) {
  const uses = inv.maxUses ? `${inv.uses} of ${inv.maxUses} uses` : `${inv.uses} uses`;
  const exp = inv.expiresAt ? `expires ${formatFull(new Date(inv.expiresAt))}` : 'never expires';
  return `${uses}, ${exp}`;
}

/** The /invite/<code> page. */
export function inviteView({ code, api, communities, router, shell }) {
  const body = h('div', { class: 'preview-card' }, h('p', { role: 'status' }, 'Loading the invite…'));
  const el = h('section', { class: 'view preview', 'aria-labelledby': 'invite-title' },
    h('header', { class: 'view-head' }, shell.menuButton(), icon('compass', 'head-icon'),
      h('h1', { id: 'invite-title' }, 'Invite')),
    h('div', { class: 'preview-body' }, body));
  document.title = 'Invite · VoiceFlow';
  api.invite(code).then((inv) => {
    const c = inv.community;
    if (communities.get(c.id)) {
      router.go(`/c/${c.id}`, { replace: true });
      return;
    }
    el.querySelector('#invite-title').textContent = `Join ${c.name}`;
    const join = h('button', { class: 'btn btn-primary', type: 'button' },
      c.requireApproval ? `Ask to join ${c.name}` : `Join ${c.name}`);
    const status = h('p', { class: 'invite-status', role: 'status' });
    join.addEventListener('click', async () => {
      join.disabled = true;
      try {
        const r = await communities.joinInvite(inv.code);
        if (r.requested) {
          status.textContent = 'Your request to join was sent. You will get in once a moderator accepts it.';
          join.textContent = 'Request sent';
          // The requester may take it back.
          const withdraw = h('button', { class: 'btn btn-ghost', type: 'button' }, 'Withdraw request');
          withdraw.addEventListener('click', async () => {
            withdraw.disabled = true;
            try {
              await api.decideJoinRequest(r.communityId, communities.me.id, false);
              status.textContent = 'Your request was withdrawn.';
              withdraw.remove();
              join.disabled = false;
              join.textContent = `Ask to join ${c.name}`;
            } catch (err) {
              withdraw.disabled = false;
              status.textContent = err.message;
            }
          });
          status.after(withdraw);
          return;
        }
        router.go(`/c/${r.communityId}`, { replace: true });
      } catch (err) {
        join.disabled = false;
        status.textContent = err.code === 'FORBIDDEN' ? 'You cannot join this community (you are banned from it).' : err.message;
      }
    });
    body.replaceChildren(
      h('div', { class: 'invite-hero' }, h('span', { class: 'rail-icon big', 'aria-hidden': 'true' }, initials(c.name)),
        h('h2', { text: c.name })),
      h('p', { text: c.description || 'No description.' }),
      h('p', { class: 'room-card-meta', text: inv.expiresAt ? `Invite expires ${formatFull(new Date(inv.expiresAt))}.` : 'This invite does not expire.' }),
      join, status);
    join.focus();
  }).catch((err) => {
    body.replaceChildren(h('p', { text: err.code === 'NOT_FOUND'
      ? 'This invite is invalid, has expired, or was used up.' : err.message }),
    h('a', { class: 'btn btn-primary', href: '/' }, 'Go home'));
  });
  return { el };
}
