// Web Push and the focus report.
//
// - Focus: `session:focus {focused}` whenever this tab gains or loses focus or visibility
//   (and after each reconnect). The server pushes to the user's devices only while none of
//   their sessions is focused.
// - Subscribing: once notifications are granted (the bell in the footer asks; see
//   notifications.js), the service worker (/sw.js) is registered and the browser's push
//   subscription, made with the deployment's VAPID key, is sent to POST /push/subscriptions.
// - Logout: the subscription is deleted on the server and in the browser.
// - A click on a push notification focuses this tab and routes to the room (sw.js posts it).

/** base64url → bytes (the VAPID key for `applicationServerKey`). */
function bytes(base64url) {
  const b64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

export class WebPush {
  #listening = [];
  #focused = null;

  constructor({ api, socket, store, router }) {
    this.api = api;
    this.socket = socket;
    this.store = store;
    this.router = router;
  }

  get supported() {
    return typeof navigator !== 'undefined' && 'serviceWorker' in navigator
      && typeof PushManager !== 'undefined' && typeof Notification !== 'undefined';
  }

  start() {
    const report = () => this.#report(false);
    const again = () => this.#report(true);
    document.addEventListener('visibilitychange', report);
    window.addEventListener('focus', report);
    window.addEventListener('blur', report);
    this.socket.addEventListener('open', again);
    this.#listening.push(
      () => document.removeEventListener('visibilitychange', report),
      () => window.removeEventListener('focus', report),
      () => window.removeEventListener('blur', report),
      () => this.socket.removeEventListener('open', again),
      this.store.on('notify-permission', ({ answer }) => {
        if (answer === 'granted') this.subscribe().catch(() => {});
      }),
    );
    if (this.supported) {
      const onMessage = (e) => {
        const path = e.data?.type === 'voiceflow:open' ? e.data.path : null;
        if (typeof path === 'string' && path.startsWith('/') && !path.startsWith('//')) this.router.go(path);
      };
      navigator.serviceWorker.addEventListener('message', onMessage);
      this.#listening.push(() => navigator.serviceWorker.removeEventListener('message', onMessage));
      if (Notification.permission === 'granted') this.subscribe().catch(() => {});
    }
  }

  stop() {
    this.#listening.forEach((f) => f());
    this.#listening = [];
  }

  #report(force) {
    const focused = document.visibilityState === 'visible' && document.hasFocus();
    if (!force && focused === this.#focused) return;
    this.#focused = focused;
    this.socket.request('session:focus', { focused }).catch(() => {});
  }

  /** Registers the service worker and this browser's subscription (idempotent). */
  async subscribe() {
    if (!this.supported || Notification.permission !== 'granted') return;
    const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    const { publicKey } = await this.api.vapidPublicKey();
    let sub = await reg.pushManager.getSubscription();
    if (!sub) {
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(publicKey) });
    }
    await this.api.pushSubscribe(sub.toJSON());
  }

  /** Forgets this browser's subscription, on the server and in the browser (logout). */
  async unsubscribe() {
    if (!this.supported) return;
    const reg = await navigator.serviceWorker.getRegistration('/');
    const sub = await reg?.pushManager.getSubscription();
    if (!sub) return;
    await this.api.pushUnsubscribe(sub.endpoint).catch(() => {});
    await sub.unsubscribe().catch(() => {});
  }
}
