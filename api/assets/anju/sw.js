// Anju's service worker: pages (GET, this origin, not the API or evidence files) come
// from the network and are kept as they come; without a network the kept page is
// shown, so that an inspector in a basement still reads the day's plan, its units and
// the inspection form. Sign-out, or a session that ended by itself (a page sent to the
// sign-in page), deletes what was kept.
var CACHE = 'anju-pages-v1';
self.addEventListener('install', function () { self.skipWaiting(); });
self.addEventListener('activate', function (e) { e.waitUntil(self.clients.claim()); });
self.addEventListener('fetch', function (e) {
  var r = e.request, u = new URL(r.url);
  if (r.method !== 'GET' || u.origin !== self.location.origin) return;
  if (u.pathname.indexOf('/api/') === 0 || u.pathname.indexOf('/evidence/') === 0) return;
  e.respondWith(fetch(r).then(function (resp) {
    // Sent to the sign-in page: the session ended (expired or revoked), and what was
    // kept for it goes, so that nobody reads it offline after.
    if (resp.redirected && new URL(resp.url).pathname.indexOf('/signin') === 0) {
      caches.delete(CACHE);
      return resp;
    }
    if (resp.ok && !resp.redirected) {
      var copy = resp.clone();
      caches.open(CACHE).then(function (c) { c.put(r, copy); });
    }
    return resp;
  }).catch(function () {
    return caches.match(r).then(function (kept) {
      return kept || new Response('<!doctype html><meta charset="utf-8"><p>离线，此页未保存。 / Offline: this page was not kept.</p>',
        { status: 503, headers: { 'content-type': 'text/html; charset=utf-8' } });
    });
  }));
});
