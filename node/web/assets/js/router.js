// History-API routing. The node answers every page path asked for as HTML with index.html,
// so a reload or a shared link lands on the right screen.
//
//   /login, /register   sign in / create an account
//   /                   the last room you had open, or the room browser
//   /rooms              the room browser
//   /rooms/:id          a room
//   /c/:id              a community (its first channel, or its empty state)
//   /c/:id/:channelId   a channel of a community (the room view)
//   /c/:id/audit        a community's audit log
//   /c/:id/requests     a community's join requests
//   /invite/:code       an invite: the community's preview and a Join button
//
// Later issues add e.g. /voice/:id (voice channels) and /stage/:id (stage rooms).

export function parse(pathname) {
  const parts = pathname.split('/').filter(Boolean);
  if (parts.length === 0) return { name: 'home' };
  if (parts.length === 1 && parts[0] === 'login') return { name: 'login' };
  if (parts.length === 1 && parts[0] === 'register') return { name: 'register' };
  if (parts.length === 1 && parts[0] === 'rooms') return { name: 'browse' };
  if (parts.length === 2 && parts[0] === 'rooms' && /^\d{1,20}$/.test(parts[1])) {
    return { name: 'room', id: parts[1] };
  }
  const id = (x) => /^\d{1,20}$/.test(x);
  if (parts[0] === 'c' && parts.length >= 2 && parts.length <= 3 && id(parts[1])) {
    if (parts.length === 2) return { name: 'community', communityId: parts[1] };
    if (id(parts[2])) return { name: 'room', id: parts[2], communityId: parts[1] };
    if (parts[2] === 'audit') return { name: 'audit', communityId: parts[1] };
    if (parts[2] === 'requests') return { name: 'requests', communityId: parts[1] };
  }
  if (parts.length === 2 && parts[0] === 'invite' && /^[A-Za-z0-9_-]{1,64}$/.test(parts[1])) {
    return { name: 'invite', code: parts[1] };
  }
  return { name: 'notfound' };
}

export class Router {
  constructor(onRoute) {
    this.onRoute = onRoute;
    window.addEventListener('popstate', () => this.#dispatch());
    // Same-origin links navigate without a page load.
    document.addEventListener('click', (e) => {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      const a = e.target.closest?.('a[href^="/"]');
      if (!a || a.target || a.hasAttribute('download')) return;
      const href = a.getAttribute('href');
      if (href.startsWith('/api') || href.startsWith('/assets')) return;
      e.preventDefault();
      this.go(href);
    });
  }

  get route() { return parse(location.pathname); }

  go(path, { replace = false } = {}) {
    if (path !== location.pathname) {
      if (replace) history.replaceState(null, '', path);
      else history.pushState(null, '', path);
    }
    this.#dispatch();
  }

  start() { this.#dispatch(); }

  #dispatch() { this.onRoute(parse(location.pathname)); }
}
