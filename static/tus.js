// A small tus 1.0.0 client for the feed page (docs/api.md, "Resumable uploads"):
// a large file goes to /api/uploads/ in chunks well under a proxy's body cap. A
// failed request is retried with backoff, from the offset the server reports, for
// as long as the page is open; the upload's URL is kept in localStorage under the
// file's name, size and modification time, so choosing the same file again after
// a reload continues it.
(function () {
  "use strict";
  var CHUNK = 8 * 1024 * 1024;
  var DELAYS = [1000, 2000, 4000, 8000, 15000, 30000];
  var KEY = "ferry-tus:";

  function b64(text) {
    var bytes = new TextEncoder().encode(text);
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s);
  }

  // o: { csrf, expires, onProgress(sent, total), onRetry(message), onDone(), onError(message) }
  function upload(file, o) {
    var key = KEY + [file.name, file.size, file.lastModified].join(":");
    var url = null;
    var offset = 0;
    var attempt = 0;
    var timer = null;
    try { url = localStorage.getItem(key); } catch (ignored) { /* storage off: no resume across reloads */ }

    function request(method, target, headers, body, onload) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, target);
      xhr.setRequestHeader("Tus-Resumable", "1.0.0");
      xhr.setRequestHeader("X-CSRF-Token", o.csrf);
      Object.keys(headers).forEach(function (h) { xhr.setRequestHeader(h, headers[h]); });
      xhr.onload = function () { onload(xhr); };
      xhr.onerror = function () { retry("connection lost"); };
      xhr.ontimeout = xhr.onerror;
      return xhr;
    }

    function message(xhr) {
      try { return JSON.parse(xhr.responseText).message; } catch (ignored) { return "upload failed (" + xhr.status + ")"; }
    }

    function forget() {
      url = null;
      try { localStorage.removeItem(key); } catch (ignored) { /* nothing stored */ }
    }

    // Worth another try: the network, the server restarting or busy, a lock held
    // by the request that was cut off, an offset that moved.
    function transient(status) {
      return status === 0 || status === 409 || status === 423 || status === 429 || status >= 500;
    }

    function retry(why) {
      var delay = DELAYS[Math.min(attempt, DELAYS.length - 1)];
      attempt++;
      o.onRetry(why + "; retrying in " + Math.round(delay / 1000) + " s");
      clearTimeout(timer);
      timer = setTimeout(function () { timer = null; resume(); }, delay);
    }

    function fail(xhr) {
      if (transient(xhr.status)) retry(message(xhr));
      else { forget(); window.removeEventListener("online", resumeNow); o.onError(message(xhr)); }
    }

    function create() {
      var meta = "filename " + b64(file.name) + ",expires " + b64(o.expires);
      request("POST", "/api/uploads/", { "Upload-Length": String(file.size), "Upload-Metadata": meta }, null, function (xhr) {
        if (xhr.status !== 201) return fail(xhr);
        url = xhr.getResponseHeader("Location");
        try { localStorage.setItem(key, url); } catch (ignored) { /* resumes within this page only */ }
        offset = 0;
        if (file.size === 0) return finish();
        send();
      }).send();
    }

    function resume() {
      if (!url) return create();
      request("HEAD", url, {}, null, function (xhr) {
        // Gone, expired or not ours: start again.
        if (xhr.status === 404 || xhr.status === 410 || xhr.status === 403) { forget(); return create(); }
        if (xhr.status !== 200) return fail(xhr);
        offset = parseInt(xhr.getResponseHeader("Upload-Offset"), 10) || 0;
        o.onProgress(offset, file.size);
        if (offset >= file.size) return finish();
        send();
      }).send();
    }

    function send() {
      var chunk = file.slice(offset, Math.min(offset + CHUNK, file.size));
      var xhr = request("PATCH", url, {
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": String(offset),
      }, chunk, function (xhr) {
        if (xhr.status !== 204) return fail(xhr);
        attempt = 0;
        offset = parseInt(xhr.getResponseHeader("Upload-Offset"), 10);
        o.onProgress(offset, file.size);
        if (offset >= file.size) finish();
        else send();
      });
      var start = offset;
      xhr.upload.onprogress = function (e) { o.onProgress(start + e.loaded, file.size); };
      xhr.send(chunk);
    }

    function finish() {
      forget();
      window.removeEventListener("online", resumeNow);
      o.onDone();
    }

    // Back online: no need to wait for the timer.
    function resumeNow() {
      if (timer !== null) { clearTimeout(timer); timer = null; resume(); }
    }
    window.addEventListener("online", resumeNow);
    resume();
  }

  // Files above this go through tus; smaller ones are one request.
  window.FerryTus = { threshold: 8 * 1024 * 1024, upload: upload };
})();
