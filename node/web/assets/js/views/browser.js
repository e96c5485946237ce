// The room browser: public rooms (paged from GET /rooms, newest first), a name filter, join by
// code, and create.
//
// The server has no search endpoint yet, so the filter searches the rooms loaded so far
// (the page says so, and "Load more" widens it).

import { clearErrors, h, hue, icon } from '../dom.js';

const PAGE = 30;

export function browserView({ store, chat, api, router, shell }) {
  const state = { rooms: [], page: 0, hasMore: true, total: 0, loading: false, error: '' };
  const list = h('ul', { class: 'room-cards', 'aria-label': 'Public rooms' });
  const status = h('p', { class: 'browser-status', role: 'status' });
  const more = h('button', { class: 'btn btn-ghost', type: 'button', hidden: true, onclick: () => load() },
    'Load more rooms');
  const search = h('input', {
    id: 'room-search', type: 'search', placeholder: 'Search rooms by name', autocomplete: 'off',
    'aria-describedby': 'room-search-hint', oninput: () => render(),
  });

  const codeForm = h('form', { class: 'code-form', novalidate: true },
    h('label', { for: 'join-code' }, 'Have an invite code?'),
    h('div', { class: 'inline' },
      h('input', {
        id: 'join-code', name: 'code', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'characters',
        placeholder: 'e.g. K7Q2MXRA', maxlength: '32', 'aria-describedby': 'join-code-error',
      }),
      h('button', { class: 'btn btn-primary', type: 'submit' }, 'Join')),
    h('p', { class: 'field-error', id: 'join-code-error', 'data-error-for': 'code', role: 'alert' }),
    h('p', { class: 'form-error', role: 'alert' }));
  codeForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(codeForm);
    const input = codeForm.querySelector('#join-code');
    const code = input.value.trim();
    if (!code) {
      codeForm.querySelector('[data-error-for="code"]').textContent = 'Enter the code you were given.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    const button = codeForm.querySelector('button');
    button.disabled = true;
    try {
      const id = await chat.joinByCode(code);
      router.go(`/rooms/${id}`);
    } catch (err) {
      const message = err.code === 'NOT_FOUND' ? 'No room has that code. Check it and try again.'
        : err.code === 'ROOM_FULL' ? 'That room is full.' : err.message;
      codeForm.querySelector('[data-error-for="code"]').textContent = message;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } finally {
      button.disabled = false;
    }
  });

  const el = h('section', { class: 'view browser', 'aria-labelledby': 'browser-title' },
    h('header', { class: 'view-head' },
      shell.menuButton(),
      icon('compass', 'head-icon'),
      h('h1', { id: 'browser-title' }, 'Browse rooms')),
    h('div', { class: 'browser-body' },
      h('div', { class: 'browser-hero' },
        h('div', {},
          h('h2', {}, 'Find your people'),
          h('p', {}, 'Join a public room, use an invite code, or start a room of your own.')),
        h('button', { class: 'btn btn-primary', type: 'button', onclick: () => shell.createRoom() },
          icon('plus'), 'Create a room')),
      h('div', { class: 'browser-tools' },
        codeForm,
        h('div', { class: 'search' },
          h('label', { for: 'room-search' }, 'Search public rooms'),
          search,
          h('p', { class: 'field-hint', id: 'room-search-hint' }, 'Searches the rooms loaded below.'))),
      status,
      list,
      h('div', { class: 'browser-more' }, more)));

  async function load() {
    if (state.loading || !state.hasMore) return;
    state.loading = true;
    state.error = '';
    render();
    try {
      const page = await api.listRooms(state.page + 1, PAGE);
      state.page = page.page;
      state.hasMore = page.hasMore;
      state.total = page.total;
      const known = new Set(state.rooms.map((r) => r.id));
      state.rooms.push(...page.data.filter((r) => !known.has(r.id)));
    } catch (err) {
      state.error = err.message;
    } finally {
      state.loading = false;
      render();
    }
  }

  async function join(room, button) {
    button.disabled = true;
    try {
      const id = await chat.joinByCode(room.joinCode);
      router.go(`/rooms/${id}`);
    } catch (err) {
      button.disabled = false;
      shell.toast(err.code === 'ROOM_FULL' ? `${room.name} is full.` : err.message);
    }
  }

  function render() {
    const q = search.value.trim().toLowerCase();
    const shown = q ? state.rooms.filter((r) => r.name.toLowerCase().includes(q)) : state.rooms;
    list.replaceChildren(...shown.map((room) => {
      const mine = chat.isMember(room.id);
      const action = mine
        ? h('a', { class: 'btn btn-ghost', href: `/rooms/${room.id}`, 'aria-label': `Open ${room.name}` }, 'Open')
        : h('button', { class: 'btn btn-primary', type: 'button', 'aria-label': `Join ${room.name}` }, 'Join');
      if (!mine) action.addEventListener('click', () => join(room, action));
      return h('li', { class: 'room-card' },
        roomIcon(room),
        h('div', { class: 'room-card-body' },
          h('h3', { class: 'room-card-name', text: room.name }),
          h('p', { class: 'room-card-desc', text: room.description || 'No description.' }),
          h('p', { class: 'room-card-meta' }, `Up to ${room.maxUsers} members`, mine ? ' · You are a member' : '')),
        action);
    }));
    let text = '';
    if (state.error) text = `Could not load rooms: ${state.error}`;
    else if (state.loading && !state.rooms.length) text = 'Loading rooms…';
    else if (!state.rooms.length) text = 'No public rooms yet. Create the first one!';
    else if (q) {
      text = `${shown.length} of ${state.rooms.length} loaded rooms match “${search.value.trim()}”`
        + (state.hasMore ? ` (${state.total} in all: load more to search them too).` : '.');
    } else text = `${state.rooms.length} of ${state.total} public rooms`;
    status.textContent = text;
    more.hidden = !state.hasMore && !state.error;
    more.disabled = state.loading;
    more.textContent = state.error ? 'Try again' : state.loading ? 'Loading…' : 'Load more rooms';
  }

  const unsub = store.on('rooms', () => render());
  document.title = 'Browse rooms · VoiceFlow';
  load();
  return {
    el,
    destroy: unsub,
    focusTarget: () => search,
  };
}

function roomIcon(room) {
  const el = h('div', { class: 'room-card-icon', 'aria-hidden': 'true', text: room.name.slice(0, 1).toUpperCase() });
  el.style.setProperty('--hue', String(hue(room.id)));
  return el;
}
