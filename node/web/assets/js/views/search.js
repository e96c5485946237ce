// Message search (GET /api/v1/search): the box in a room's header and its results panel.
// The query goes to the server as typed (words, "phrases", from:, in:, has:, before:, after:);
// each result shows the room, the author, the time and the snippet with its matches marked
// (the server sends plain text and code-point ranges, so nothing is parsed as HTML). Choosing
// a result opens its room and asks the room view to load history back to the message and
// highlight it (store.jumpTo, picked up by views/room.js).

import { formatFull, formatTime, h, icon } from '../dom.js';

/** The snippet as text nodes and <mark> elements. */
function snippetNodes(snippet, highlights) {
  const chars = Array.from(snippet); // code points, as the ranges count them
  const out = [];
  let at = 0;
  for (const [start, end] of highlights || []) {
    if (start < at || end > chars.length || start >= end) continue;
    if (start > at) out.push(chars.slice(at, start).join(''));
    out.push(h('mark', { text: chars.slice(start, end).join('') }));
    at = end;
  }
  if (at < chars.length) out.push(chars.slice(at).join(''));
  return out;
}

/** The header's search box; `pathOf(roomId)` is the route of a room. */
export function searchBox({ api, store, router, shell, pathOf }) {
  const input = h('input', {
    type: 'search', class: 'search-input', placeholder: 'Search messages',
    'aria-label': 'Search messages', maxlength: '512', autocomplete: 'off',
  });
  const status = h('p', { class: 'search-status', role: 'status' });
  const results = h('ol', { class: 'search-results', 'aria-label': 'Search results' });
  const panel = h('div', { class: 'search-panel', hidden: true },
    h('div', { class: 'search-panel-head' },
      h('h2', {}, 'Search'),
      h('button', {
        class: 'icon-btn', type: 'button', 'aria-label': 'Close search',
        onclick: () => close(),
      }, icon('close'))),
    status, results);
  let seq = 0;

  function close() {
    panel.hidden = true;
    input.value = '';
  }

  async function run(q) {
    const mine = ++seq;
    panel.hidden = false;
    status.textContent = 'Searching…';
    results.replaceChildren();
    let page;
    try {
      page = await api.search({ q });
    } catch (err) {
      if (mine !== seq) return;
      status.textContent = err.code === 'VALIDATION_ERROR' ? err.message : `Search failed: ${err.message}`;
      return;
    }
    if (mine !== seq) return;
    const hits = page.data || [];
    status.textContent = `${hits.length ? hits.length : 'No'} result${hits.length === 1 ? '' : 's'}`
      + (page.partial ? ' (some rooms could not be searched right now)' : '');
    results.replaceChildren(...hits.map((hit) => {
      const at = new Date(hit.createdAt);
      return h('li', {},
        h('button', {
          class: 'search-result', type: 'button', 'data-message-id': hit.messageId,
          onclick: () => {
            store.jumpTo = { roomId: hit.roomId, messageId: hit.messageId };
            panel.hidden = true;
            const path = pathOf(hit.roomId);
            if (path === location.pathname) store.emit('jump', { roomId: hit.roomId });
            else router.go(path);
          },
        },
        h('span', { class: 'search-result-head' },
          h('span', { class: 'search-room', text: `#${hit.roomName}` }),
          h('strong', { class: 'search-author', text: hit.username }),
          h('time', { datetime: at.toISOString(), title: formatFull(at), text: formatTime(at) })),
        h('span', { class: 'search-snippet' }, ...snippetNodes(hit.snippet, hit.highlights))));
    }));
  }

  const form = h('form', {
    class: 'search-form', role: 'search',
    onsubmit: (e) => {
      e.preventDefault();
      const q = input.value.trim();
      if (q) run(q).catch((err) => shell.toast(`Search failed: ${err.message}`));
    },
  }, icon('search', 'search-icon'), input);
  input.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });
  return { form, panel };
}

/**
 * The room view's side of a jump: when store.jumpTo names this room, wait for the newest page,
 * page back through history until the message is loaded, and reveal it highlighted.
 */
export function searchJumps({ room, store, chat, list, shell }) {
  const offs = [];
  let gone = false;

  function latestLoaded() {
    if (room.loadedLatest) return Promise.resolve();
    return new Promise((resolve) => {
      const off = store.on('messages', (d) => {
        if (d.roomId === room.id && room.loadedLatest) {
          off();
          resolve();
        }
      });
      offs.push(off);
    });
  }

  async function jump() {
    const target = store.jumpTo;
    if (!target || target.roomId !== room.id) return;
    store.jumpTo = null;
    await latestLoaded();
    for (let pages = 0; !gone && !room.messages.has(target.messageId) && room.hasMore && pages < 100; pages++) {
      // Another page may be on its way (scrolling): wait for it rather than spin.
      if (!(await chat.loadOlder(room))) await new Promise((r) => { setTimeout(r, 100); });
    }
    if (gone) return;
    if (!room.messages.has(target.messageId)) {
      shell.toast('That message is no longer there.');
      return;
    }
    // Once the pages just loaded are rendered (their renders are queued for the next frame).
    await new Promise((r) => { requestAnimationFrame(() => requestAnimationFrame(r)); });
    if (!gone) list.reveal(target.messageId, { keep: true });
  }

  const run = () => jump().catch((err) => shell.toast(`Could not load the message: ${err.message}`));
  offs.push(store.on('jump', (d) => { if (d.roomId === room.id) run(); }));
  return {
    run,
    destroy: () => {
      gone = true;
      offs.forEach((f) => f());
    },
  };
}
