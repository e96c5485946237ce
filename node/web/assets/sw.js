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

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const path = safePath(event.notification.data?.url);
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const mine = windows.find((c) => new URL(c.url).origin === self.location.origin);
    if (mine) {
      await mine.focus();
      // The page routes itself (no reload): see push.js.
      mine.postMessage({ type: 'voiceflow:open', path });
      return;
    }
    await self.clients.openWindow(new URL(path, self.location.origin).href);
  })());
});
