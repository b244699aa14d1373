// The HEIC converter's frame (/assets/heic.html): converts each photo its page sends
// (postMessage, same origin only) to JPEG with heic2any and sends it back.
(function () {
  'use strict';
  var origin = location.origin;
  window.addEventListener('message', function (ev) {
    if (ev.origin !== origin || ev.source !== window.parent || !ev.data || !ev.data.blob) return;
    var id = ev.data.id;
    window.heic2any({ blob: ev.data.blob, toType: 'image/jpeg', quality: 0.85 }).then(function (out) {
      window.parent.postMessage({ id: id, jpeg: Array.isArray(out) ? out[0] : out }, origin);
    }, function (e) {
      window.parent.postMessage({ id: id, error: String((e && e.message) || e) }, origin);
    });
  });
  window.parent.postMessage({ ready: true }, origin);
})();
