// What a community channel adds to the room view (views/room.js): header buttons for what this
// user may do (invite, edit the channel, its permission overrides), the community's member
// list in the member panel, and the composer's state: it is disabled, with the reason, when the
// channel's `permissions` lack send_messages or this user is timed out (GET …/members gives
// `timedOutUntil`).

import { h, icon } from '../dom.js';
import { canIn } from '../community.js';
import { communityMembersPanel } from './community-members.js';

export function channelExtras({ room, communities, actions, api, store, me, toast }) {
  const c = () => communities.get(room.communityId);
  const membersEl = h('div', { class: 'community-members-slot' },
    h('p', { class: 'members-loading' }, 'Loading members…'));
  /** The member list, made once the community is loaded (after a reload it may not be yet). */
  let members = null;
  function ensureMembers() {
    if (members || !c()) return;
    members = communityMembersPanel({ c: c(), communities, api, store, me, toast });
    membersEl.replaceChildren(members.el);
  }
  ensureMembers();
  let timer = 0;

  /** The header's buttons for this channel. */
  function buttons() {
    ensureMembers();
    const community = c();
    const ch = community?.channel(room.id);
    if (!community || !ch) return [];
    const out = [];
    if (community.can('create_invite', me.id)) {
      out.push(h('button', {
        class: 'btn btn-small btn-ghost invite-btn', type: 'button', 'aria-label': 'Invite people', title: 'Invite people',
        onclick: () => actions.invite(),
      }, icon('plus'), h('span', { class: 'invite-label', text: 'Invite' })));
    }
    if (canIn(ch, 'manage_channels') && community.can('manage_roles', me.id)) {
      out.push(h('button', {
        class: 'icon-btn', type: 'button', 'aria-label': 'Channel permissions', title: 'Channel permissions',
        onclick: () => actions.overrides(community.channel(room.id)),
      }, icon('shield')));
    }
    if (canIn(ch, 'manage_channels')) {
      out.push(h('button', {
        class: 'icon-btn', type: 'button', 'aria-label': 'Channel settings', title: 'Channel settings',
        onclick: () => actions.editChannel(community.channel(room.id)),
      }, icon('settings')));
    }
    return out;
  }

  /** {disabled, reason}: whether this user may write here now. */
  function composerState() {
    const community = c();
    const ch = community?.channel(room.id);
    clearTimeout(timer);
    if (!community || !ch) return { disabled: false, reason: '' };
    const until = community.timedOutUntil();
    if (until) {
      // Enabled again when it ends (the list is read again then).
      const wait = Math.min(until.getTime() - Date.now() + 500, 2 ** 31 - 1);
      timer = setTimeout(() => communities.load(community.id).catch(() => {}), wait);
      return { disabled: true, reason: `You are timed out until ${until.toLocaleString()}.` };
    }
    if (!canIn(ch, 'send_messages')) {
      return { disabled: true, reason: 'You do not have permission to send messages in this channel.' };
    }
    return { disabled: false, reason: '' };
  }

  return {
    buttons,
    composerState,
    membersEl,
    canAttach: () => canIn(c()?.channel(room.id), 'attach_files'),
    destroy: () => { clearTimeout(timer); members?.destroy(); },
  };
}
