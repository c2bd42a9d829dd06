// Switchboard's service worker: the app's shell (the versioned /assets/ files) comes from a
// cache, so the installed app starts fast; everything else, the API above all, goes straight to
// the network and is never stored.
const CACHE = 'switchboard-shell-v1';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  const shell = e.request.method === 'GET' && url.origin === self.location.origin && url.pathname.startsWith('/assets/') && url.searchParams.has('v');
  if (!shell) return;
  e.respondWith(caches.open(CACHE).then(async (cache) => {
    const hit = await cache.match(e.request);
    if (hit) return hit;
    const res = await fetch(e.request);
    if (res.ok) {
      // A new version replaces the old one of the same file.
      for (const old of await cache.keys()) if (new URL(old.url).pathname === url.pathname) await cache.delete(old);
      await cache.put(e.request, res.clone());
    }
    return res;
  }));
});
