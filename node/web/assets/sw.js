// The service worker: shows Web Push notifications (mentions, direct messages, calls) while
// no tab of the user is focused, and opens or focuses the client on the right room on click.
// Served as /sw.js (scope: the whole client). The payload is what the server encrypted:
// {kind: mention|dm|call, roomId, messageId?, title, body, url}.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** A path of this client ('/rooms/1'), never another origin. */
function safePath(url) {
  return typeof url === 'string' && url.startsWith('/') && !url.startsWith('//') ? url : '/';
}

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  const title = typeof data.title === 'string' && data.title ? data.title : 'VoiceFlow';
  const options = {
    body: typeof data.body === 'string' ? data.body : '',
    tag: `${data.kind || 'push'}:${data.messageId || data.roomId || ''}`,
    icon: '/assets/icon.svg',
    data: { url: safePath(data.url) },
    requireInteraction: data.kind === 'call',
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

/**
 * Shows `path` in a window of this client: posts the route to one (the page routes itself, no
 * reload: see push.js) and then focuses it, posting first because a focus can be refused; opens
 * a new window when there is none.
 */
async function openPath(path) {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const mine = windows.find((c) => new URL(c.url).origin === self.location.origin);
  if (mine) {
    mine.postMessage({ type: 'voiceflow:open', path });
    await mine.focus().catch(() => {});
    return;
  }
  await self.clients.openWindow(new URL(path, self.location.origin).href);
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(openPath(safePath(event.notification.data?.url)));
});
