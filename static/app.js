// Ferry's progressive enhancement: live updates, drag-and-drop and pasted uploads
// with progress (files sent together become one item) (large files resumable, through static/tus.js), copy buttons, local
// times. Every basic action also works without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.content : "";

  function localTime(el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) el.textContent = d.toLocaleString();
  }

  // A live item's card, as the server renders it for this user (templates/item_card.html).
  function fetchCard(id) {
    return fetch("/items/" + encodeURIComponent(id) + "/card", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return null;
        var t = document.createElement("template");
        t.innerHTML = html.trim();
        var li = t.content.firstElementChild;
        li.classList.add("new");
        li.querySelectorAll("time[datetime]").forEach(localTime);
        return li;
      });
  }

  function live(feed) {
    if (!window.EventSource) return;
    // Resume after the last event the page was rendered with; on reconnects the
    // browser sends Last-Event-ID itself, which takes precedence.
    var after = feed.getAttribute("data-after");
    var source = new EventSource(after ? "/events?after=" + encodeURIComponent(after) : "/events");
    // Cards are fetched one after another, so they are inserted in event order.
    var queue = Promise.resolve();
    var deleted = {};
    source.addEventListener("item.created", function (e) {
      var id = JSON.parse(e.data).id;
      if (document.getElementById("item-" + id)) return;
      queue = queue.then(function () { return fetchCard(id); }).then(function (li) {
        // Deleted while its card was on the way: leave it out.
        if (!li || deleted[id] || document.getElementById("item-" + id)) return;
        var empty = document.getElementById("empty");
        if (empty) empty.remove();
        feed.insertBefore(li, feed.firstChild);
      }).catch(function () { /* the next event or a reload brings it */ });
    });
    source.addEventListener("item.deleted", function (e) {
      var id = JSON.parse(e.data).id;
      deleted[id] = true;
      var gone = document.getElementById("item-" + id);
      if (gone) gone.remove();
    });
    source.addEventListener("resync", function () { window.location.reload(); });
  }

  // Each upload's row is a copy of the feed's <template id="upload-row">.
  function upload(file, list, expires) {
    var row = document.getElementById("upload-row").content.firstElementChild.cloneNode(true);
    var label = row.querySelector(".name");
    var bar = row.querySelector("progress");
    label.textContent = file.name;
    list.appendChild(row);
    var done = function () {
      bar.value = 100;
      label.textContent = file.name + " ✓";
      label.className = "";
      setTimeout(function () { row.remove(); }, 3000);
    };
    var failed = function (msg) { label.textContent = file.name + ": " + msg; label.className = "error"; };
    // Large files go in resumable pieces (static/tus.js); the bar carries on across retries.
    if (window.FerryTus && file.size > window.FerryTus.threshold) {
      window.FerryTus.upload(file, {
        csrf: csrf,
        expires: expires,
        onProgress: function (sent, total) {
          bar.value = Math.floor(100 * sent / total);
          label.textContent = file.name;
          label.className = "";
        },
        onRetry: function (msg) { label.textContent = file.name + ": " + msg; label.className = "retrying"; },
        onDone: done,
        onError: failed,
      });
      return;
    }
    postFiles([file], bar, done, failed, expires);
  }

  // One request, one item: every file of `files` in one multipart form.
  function postFiles(files, bar, done, failed, expires) {
    var form = new FormData();
    form.append("expires", expires);
    files.forEach(function (f) { form.append("file", f, f.name); });
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/items");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
    xhr.onload = function () {
      if (xhr.status === 201) {
        done();
      } else {
        var msg = "upload failed (" + xhr.status + ")";
        try { msg = JSON.parse(xhr.responseText).message; } catch (ignored) { /* keep the status */ }
        failed(msg);
      }
    };
    xhr.onerror = function () { failed("network error"); };
    xhr.send(form);
  }

  // Several files sent together become one item, in one row with one bar.
  function uploadTogether(files, list, expires) {
    var row = document.getElementById("upload-row").content.firstElementChild.cloneNode(true);
    var label = row.querySelector(".name");
    var bar = row.querySelector("progress");
    var title = files.length + " files";
    label.textContent = title;
    list.appendChild(row);
    var done = function () {
      bar.value = 100;
      label.textContent = title + " ✓";
      label.className = "";
      setTimeout(function () { row.remove(); }, 3000);
    };
    var failed = function (msg) { label.textContent = title + ": " + msg; label.className = "error"; };
    postFiles(files, bar, done, failed, expires);
  }

  // Files dropped, picked or pasted together: the small ones as one item; a file
  // large enough to go resumably (static/tus.js) is an item of its own.
  function sendAll(files, list, expires) {
    files = Array.prototype.slice.call(files);
    var large = function (f) { return window.FerryTus && f.size > window.FerryTus.threshold; };
    var together = files.filter(function (f) { return !large(f); });
    files.filter(large).forEach(function (f) { upload(f, list, expires); });
    if (together.length > 1) uploadTogether(together, list, expires);
    else if (together.length === 1) upload(together[0], list, expires);
  }

  // A pasted note's status, in a copy of the same row an upload shows.
  function postNote(text, list, expires) {
    var row = document.getElementById("upload-row").content.firstElementChild.cloneNode(true);
    var label = row.querySelector(".name");
    row.querySelector("progress").remove();
    label.textContent = "Pasted note…";
    list.appendChild(row);
    var fail = function (msg) { label.textContent = "Pasted note: " + msg; label.className = "error"; };
    fetch("/api/items", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ text: text, expires: expires })
    }).then(function (r) {
      if (r.status === 201) {
        label.textContent = "Pasted note ✓";
        setTimeout(function () { row.remove(); }, 3000);
        return;
      }
      return r.json().then(function (b) { fail(b.message); }, function () { fail("failed (" + r.status + ")"); });
    }).catch(function () { fail("network error"); });
  }

  // A copied image arrives as "image.png": name it after the moment it was pasted.
  function pastedFile(file) {
    if (!/^image\.\w+$/.test(file.name)) return file;
    var stamp = new Date().toISOString().slice(0, 19).replace(/[T:]/g, "-");
    return new File([file], "pasted-" + stamp + file.name.slice(5), { type: file.type });
  }

  // Ctrl/Cmd+V on the feed: files or an image become uploads; text pasted outside a
  // text field becomes a note. Text pasted into a field stays an ordinary paste.
  function pasted(e, send, list, expiry) {
    var data = e.clipboardData;
    if (!data) return;
    var files = Array.prototype.slice.call(data.files || []);
    if (files.length) {
      e.preventDefault();
      send(files.map(pastedFile));
      return;
    }
    if (e.target.closest && e.target.closest("input, textarea, select, [contenteditable]")) return;
    var text = data.getData("text/plain");
    if (!text || !text.trim()) return;
    e.preventDefault();
    postNote(text, list, expiry());
  }

  function uploads(formEl) {
    var zone = document.getElementById("dropzone");
    var input = document.getElementById("file-input");
    var list = document.getElementById("uploads");
    var expiry = function () { var s = document.querySelector(".note-form select[name=expires]"); return s ? s.value : "never"; };
    var send = function (files) { sendAll(files, list, expiry()); };
    input.addEventListener("change", function () { send(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) { if (e.dataTransfer) send(e.dataTransfer.files); });
    formEl.addEventListener("submit", function (e) { e.preventDefault(); send(input.files); });
    document.addEventListener("paste", function (e) { pasted(e, send, list, expiry); });
  }

  function copy(text, button) {
    var done = function () { var old = button.textContent; button.textContent = "Copied"; setTimeout(function () { button.textContent = old; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      var area = document.createElement("textarea"); area.value = text; document.body.appendChild(area); area.select();
      try { document.execCommand("copy"); done(); } finally { area.remove(); }
    }
  }

  document.addEventListener("click", function (e) {
    var target = e.target;
    if (target.matches(".copy")) {
      var note = document.querySelector("#item-" + target.getAttribute("data-copy") + " .note");
      if (note) copy(note.textContent, target);
    } else if (target.matches(".copy-input")) {
      var input = target.parentNode.querySelector("input");
      copy(input.value, target);
    } else if (target.closest("form.delete") && target.type === "submit") {
      if (!window.confirm("Delete this item for everyone?")) e.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("time[datetime]").forEach(localTime);
    document.querySelectorAll("input.share-url").forEach(function (i) {
      if (i.value.charAt(0) === "/") i.value = window.location.origin + i.value;
    });
    var feed = document.getElementById("feed");
    if (feed) live(feed);
    var form = document.getElementById("upload-form");
    if (form) uploads(form);
  });
})();
