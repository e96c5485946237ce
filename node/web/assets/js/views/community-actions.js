// What the rail and the community menu do: open the dialogs (create / join / settings, roles,
// invites, channel and category forms, overrides) and go where the result is.

import { confirmDialog } from './dialog.js';
import { categoryFormDialog, channelFormDialog, communityFormDialog, joinCommunityDialog } from './community-forms.js';
import { invitesDialog } from './community-invites.js';
import { overridesDialog } from './community-overrides.js';
import { rolesDialog } from './community-roles.js';

export class CommunityActions {
  constructor({ communities, api, store, chat, router, shell, voice }) {
    Object.assign(this, { communities, api, store, chat, router, shell, voice });
  }

  async create() {
    this.shell.closeSidebar();
    const id = await communityFormDialog({ save: (fields) => this.communities.create(fields) });
    if (id) this.router.go(`/c/${id}`);
  }

  async join() {
    this.shell.closeSidebar();
    const code = await joinCommunityDialog();
    if (code) this.router.go(`/invite/${encodeURIComponent(code)}`);
  }

  /** The menu's and the channel list's entries for one community. */
  forCommunity(id) {
    const cs = this.communities;
    const c = () => cs.get(id);
    const toast = (text) => this.shell.toast(text);
    return {
      invite: () => invitesDialog({ c: c(), api: this.api, me: this.chat.me }),
      settings: async () => {
        const done = await communityFormDialog({
          community: c().meta,
          save: (fields) => cs.update(id, fields),
          onDelete: c().meta.ownerId === this.chat.me.id ? {
            label: 'Delete community',
            run: async () => {
              const ok = await confirmDialog({ title: 'Delete community', danger: true, confirmLabel: 'Delete',
                message: `Delete ${c().name}, its channels and their messages for everyone? This cannot be undone.` });
              if (!ok) return false;
              try {
                await cs.remove(id);
                this.router.go('/rooms');
                return true;
              } catch (err) {
                toast(`Could not delete the community: ${err.message}`);
                return false;
              }
            },
          } : null,
        });
        if (done && done !== 'deleted') toast('Community settings saved.');
      },
      roles: () => rolesDialog({ c: c(), communities: cs, toast }),
      requests: () => this.router.go(`/c/${id}/requests`),
      audit: () => this.router.go(`/c/${id}/audit`),
      createChannel: async (categoryId = null) => {
        const ch = await channelFormDialog({
          categories: c().categories, categoryId: typeof categoryId === 'string' ? categoryId : null,
          save: (fields) => cs.createChannel(id, fields),
        });
        if (ch) this.router.go(`/c/${id}/${ch.id}`);
      },
      createCategory: async () => {
        const cat = await categoryFormDialog({ save: (fields) => cs.createCategory(id, fields) });
        if (cat) toast(`Category ${cat.name} created.`);
      },
      editChannel: async (ch) => {
        await channelFormDialog({
          channel: ch, categories: c().categories,
          save: (fields) => cs.updateChannel(id, ch.id, fields),
          onDelete: {
            label: 'Delete channel',
            run: async () => {
              const ok = await confirmDialog({ title: 'Delete channel', danger: true, confirmLabel: 'Delete channel',
                message: `Delete #${ch.name} and all its messages for everyone?` });
              if (!ok) return false;
              try {
                await cs.deleteChannel(id, ch.id);
                return true;
              } catch (err) {
                toast(`Could not delete the channel: ${err.message}`);
                return false;
              }
            },
          },
        });
      },
      overrides: (ch) => overridesDialog({ c: c(), channel: ch, communities: cs, api: this.api, toast }),
      editCategory: async (cat) => {
        await categoryFormDialog({
          category: cat,
          save: (fields) => cs.updateCategory(id, cat.id, fields),
          onDelete: {
            label: 'Delete category',
            run: async () => {
              const ok = await confirmDialog({ title: 'Delete category', danger: true, confirmLabel: 'Delete category',
                message: `Delete ${cat.name}? Its channels stay, in no category.` });
              if (!ok) return false;
              try {
                await cs.deleteCategory(id, cat.id);
                return true;
              } catch (err) {
                toast(`Could not delete the category: ${err.message}`);
                return false;
              }
            },
          },
        });
      },
      leave: async () => {
        const ok = await confirmDialog({ title: `Leave ${c().name}`, confirmLabel: 'Leave community',
          message: 'You will need an invite to come back.' });
        if (!ok) return;
        try {
          await cs.leave(id);
          this.router.go('/rooms');
        } catch (err) {
          toast(`Could not leave: ${err.message}`);
        }
      },
    };
  }
}
