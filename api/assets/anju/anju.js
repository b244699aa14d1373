// Anju's one script, written here (no build step). Pages work without it; with it:
// HEIC photos are converted to JPEG before they are sent; forms marked data-offline are sent with fetch, and kept in the browser (IndexedDB,
// files included) when the service cannot be reached, then sent again with the same
// Idempotency-Key when it can (nothing is recorded twice); a page asks the service
// worker (/sw.js) to keep the pages visited, so that the day's plan, its units and
// the inspection form stay readable offline; a plan page fetches its units' pages
// once, so that they are kept too; sign-out forgets what was kept.
(function () {
  'use strict';
  var DB = 'anju-outbox', STORE = 'forms';

  function open() {
    return new Promise(function (ok, fail) {
      var r = indexedDB.open(DB, 1);
      r.onupgradeneeded = function () { r.result.createObjectStore(STORE, { autoIncrement: true }); };
      r.onsuccess = function () { ok(r.result); };
      r.onerror = function () { fail(r.error); };
    });
  }
  function tx(mode, work) {
    return open().then(function (db) {
      return new Promise(function (ok, fail) {
        var t = db.transaction(STORE, mode), result;
        t.oncomplete = function () { ok(result); };
        t.onerror = function () { fail(t.error); };
        result = work(t.objectStore(STORE));
      });
    });
  }
  function entries(form) {
    var out = [];
    new FormData(form).forEach(function (v, k) { out.push([k, v]); });
    return out;
  }
  function body(kept) {
    var fd = new FormData();
    kept.fields.forEach(function (kv) {
      // A file input left empty is no file.
      if (kv[1] instanceof Blob) { if (kv[1].size) fd.append(kv[0], kv[1], kv[1].name || 'photo.jpg'); }
      else fd.append(kv[0], kv[1]);
    });
    return fd;
  }
  // Sends a form; resolves with the answer, or null when the service was not reached
  // (no network, or the service down or restarting).
  function send(kept) {
    return fetch(kept.action, { method: 'POST', body: body(kept), credentials: 'same-origin' })
      .then(function (r) { return [502, 503, 504].indexOf(r.status) >= 0 ? null : r; })
      .catch(function () { return null; });
  }
  function show(r) {
    if (r.redirected) { location.href = r.url; return; }
    r.text().then(function (html) { document.open(); document.write(html); document.close(); });
  }
  function status(text) {
    var s = document.getElementById('outbox');
    if (s) s.textContent = text;
  }
  function pending() {
    return tx('readonly', function (st) {
      var out = { n: 0 };
      st.count().onsuccess = function (e) { out.n = e.target.result; };
      return out;
    }).then(function (out) { return out.n; });
  }
  var flushing = false, refused = 0;
  // Sends again every kept form, oldest first; each is forgotten once the service
  // answered it (recorded, or refused: a refusal will not change by sending again).
  function flush() {
    if (flushing) return Promise.resolve();
    flushing = true;
    return tx('readonly', function (st) {
      var all = [];
      st.openCursor().onsuccess = function (e) {
        var c = e.target.result;
        if (c) { all.push([c.key, c.value]); c.continue(); }
      };
      return all;
    }).then(function (all) {
      return all.reduce(function (p, item) {
        return p.then(function () {
          return send(item[1]).then(function (r) {
            if (!r) throw new Error('unreachable');
            if (!r.ok && !r.redirected) refused += 1;
            return tx('readwrite', function (st) { st.delete(item[0]); });
          });
        });
      }, Promise.resolve());
    }).then(function () {
      status(refused ? '有 ' + refused + ' 份保存的记录被拒绝，请重新填写 / ' + refused +
        ' kept form(s) were refused when sent: fill them in again' : '');
    }, function () {})
      .then(function () { flushing = false; return pending(); })
      .then(function (n) { if (n) status('有 ' + n + ' 份记录待发送 / ' + n + ' form(s) waiting to be sent'); });
  }
  function keep(form) {
    var kept = { action: form.action, fields: entries(form), at: new Date().toISOString() };
    return tx('readwrite', function (st) { st.add(kept); }).then(function () {
      status('网络不通，已保存在本机，联网后自动提交 / No connection: kept on this phone, sent when the connection returns');
    });
  }
  function offlineForm(form) {
    // A key of this page's own: a page kept offline and opened twice is two forms.
    var key = form.querySelector('[name=idempotency_key]');
    if (key && window.crypto && crypto.randomUUID) key.value = crypto.randomUUID().replace(/-/g, '');
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var seen = form.querySelector('[name=observed_at]');
      if (seen && !seen.value) seen.value = new Date().toISOString();
      var kept = { action: form.action, fields: entries(form) };
      send(kept).then(function (r) { return r ? show(r) : keep(form); });
    });
  }
  // HEIC photos (an iPhone's camera) become JPEG in the browser before a form is sent:
  // the converter (heic2any, vendored) runs in a frame of its own (/assets/heic.html,
  // whose policy lets its decoder use eval, which the pages forbid), loaded only when
  // such a photo is chosen; photos go to it and JPEGs come back by postMessage.
  var converter = null;
  function heic2any() {
    if (!converter) {
      converter = new Promise(function (ok, fail) {
        var frame = document.createElement('iframe'), waiting = {}, next = 0;
        frame.hidden = true;
        frame.src = '/assets/heic.html';
        window.addEventListener('message', function (ev) {
          if (ev.origin !== location.origin || ev.source !== frame.contentWindow) return;
          var m = ev.data || {};
          if (m.ready) {
            ok(function (opts) {
              return new Promise(function (done, refuse) {
                var id = ++next;
                waiting[id] = [done, refuse];
                frame.contentWindow.postMessage({ id: id, blob: opts.blob }, location.origin);
              });
            });
            return;
          }
          var w = waiting[m.id];
          if (!w) return;
          delete waiting[m.id];
          if (m.jpeg) w[0](m.jpeg); else w[1](new Error(m.error || 'conversion failed'));
        });
        frame.onerror = fail;
        document.body.appendChild(frame);
      });
    }
    return converter;
  }
  function isHeic(f) { return /^image\/hei[cf]/.test(f.type) || /\.hei[cf]$/i.test(f.name); }
  function convertHeic(input) {
    var files = Array.prototype.slice.call(input.files || []);
    if (!files.some(isHeic)) return;
    var form = input.form, buttons = form ? form.querySelectorAll('button') : [];
    Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
    status('正在把 HEIC 照片转换为 JPEG… / Converting HEIC photos to JPEG…');
    heic2any().then(function (convert) {
      return Promise.all(files.map(function (f) {
        if (!isHeic(f)) return f;
        return convert({ blob: f }).then(function (jpeg) {
          return new File([jpeg], f.name.replace(/\.hei[cf]$/i, '') + '.jpg', { type: 'image/jpeg' });
        });
      }));
    }).then(function (converted) {
      var dt = new DataTransfer();
      converted.forEach(function (f) { dt.items.add(f); });
      input.files = dt.files;
      input.dataset.converted = String(converted.length);
      status('');
    }, function () {
      status('HEIC 照片无法转换，请改用 JPEG / The HEIC photo could not be converted: choose a JPEG');
      input.value = '';
    }).then(function () {
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; });
    });
  }
  // The inspection form: the position fields filled from the phone, saying when
  // there is none.
  var pos = document.getElementById('pos');
  if (pos) {
    if (!navigator.geolocation) {
      pos.textContent = '此设备无法定位，将记录为未定位 / This device gives no position: the visit is recorded without one';
    } else {
      navigator.geolocation.getCurrentPosition(function (p) {
        document.getElementById('lon').value = p.coords.longitude;
        document.getElementById('lat').value = p.coords.latitude;
        pos.textContent = '已定位 / Position: ' + p.coords.latitude.toFixed(6) + ', ' +
          p.coords.longitude.toFixed(6) + ' (±' + Math.round(p.coords.accuracy) + ' m)';
      }, function (e) {
        pos.textContent = '无法定位，将记录为未定位 / No position (' + e.message + '): the visit is recorded without one';
      }, { enableHighAccuracy: true, timeout: 15000 });
    }
  }
  document.querySelectorAll('button.print').forEach(function (b) {
    b.addEventListener('click', function () { window.print(); });
  });
  document.querySelectorAll('input[type=file]').forEach(function (input) {
    input.addEventListener('change', function () { convertHeic(input); });
  });
  document.querySelectorAll('form[data-offline]').forEach(offlineForm);
  document.querySelectorAll('form.signout').forEach(function (f) {
    f.addEventListener('submit', function () {
      if (window.caches) caches.delete('anju-pages-v1');
    });
  });
  // A session that ended by itself (expired, revoked) lands here, on the sign-in page:
  // what was kept for it offline is forgotten too.
  if (location.pathname.indexOf('/signin') === 0 && window.caches) {
    caches.delete('anju-pages-v1');
  }
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/sw.js').then(function () {
      if (location.pathname === '/plan') {
        document.querySelectorAll('a[href^="/units/"]').forEach(function (a) {
          fetch(a.href, { credentials: 'same-origin' }).catch(function () {});
        });
      }
    }).catch(function () {});
  }
  if (window.indexedDB) {
    window.addEventListener('online', flush);
    setInterval(flush, 10000);
    flush();
  }
  window.anjuFlush = flush;
})();
