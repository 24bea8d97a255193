// Ferry's progressive enhancement: live updates, drag-and-drop uploads with
// progress, copy buttons, local times. Every basic action also works without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.content : "";
  var userMeta = document.querySelector('meta[name="ferry-user"]');
  var me = userMeta ? userMeta.content : null;
  var admin = userMeta ? userMeta.getAttribute("data-admin") === "true" : false;

  function localTime(el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) el.textContent = d.toLocaleString();
  }

  function sizeLabel(bytes) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0, n = bytes;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return i === 0 ? bytes + " B" : n.toFixed(1) + " " + units[i];
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Build a card like templates/item_card.html. Text goes through textContent only.
  function card(item) {
    var li = el("li", { "class": "item card new", id: "item-" + item.id, "data-id": item.id });
    var meta = el("div", { "class": "meta" });
    meta.appendChild(el("span", { "class": "author" }, item.author || ""));
    var t = el("time", { datetime: item.created_at }, item.created_at);
    localTime(t);
    meta.appendChild(t);
    if (item.expires_at) {
      var exp = el("span", { "class": "expires", title: "expires" }, "⏳ ");
      var et = el("time", { datetime: item.expires_at }, item.expires_at);
      localTime(et);
      exp.appendChild(et);
      meta.appendChild(exp);
    }
    li.appendChild(meta);
    if (item.kind === "note") {
      li.appendChild(el("pre", { "class": "note" }, item.text || ""));
    } else {
      var p = el("p", { "class": "file" });
      p.appendChild(el("a", { href: item.content_url, download: "" }, item.name || "file"));
      p.appendChild(document.createTextNode(" "));
      p.appendChild(el("span", { "class": "size" }, sizeLabel(item.size)));
      li.appendChild(p);
      if (/^image\/(png|jpeg|gif|webp|avif)/.test(item.content_type)) {
        li.appendChild(el("img", { "class": "preview", src: item.content_url, alt: item.name || "", loading: "lazy" }));
      }
    }
    var actions = el("div", { "class": "actions" });
    if (item.kind === "note") actions.appendChild(el("button", { type: "button", "class": "link copy", "data-copy": item.id }, "Copy"));
    actions.appendChild(el("a", { href: "/items/" + item.id }, "Share…"));
    if (admin || (me !== null && item.author === me)) {
      var del = el("form", { method: "post", action: "/items/" + item.id + "/delete", "class": "inline delete" });
      del.appendChild(el("input", { type: "hidden", name: "csrf", value: csrf }));
      del.appendChild(el("button", { type: "submit", "class": "link danger" }, "Delete"));
      actions.appendChild(del);
    }
    li.appendChild(actions);
    return li;
  }

  function live(feed) {
    if (!window.EventSource) return;
    // Resume after the last event the page was rendered with; on reconnects the
    // browser sends Last-Event-ID itself, which takes precedence.
    var after = feed.getAttribute("data-after");
    var source = new EventSource(after ? "/events?after=" + encodeURIComponent(after) : "/events");
    source.addEventListener("item.created", function (e) {
      var item = JSON.parse(e.data);
      if (document.getElementById("item-" + item.id)) return;
      var empty = document.getElementById("empty");
      if (empty) empty.remove();
      feed.insertBefore(card(item), feed.firstChild);
    });
    source.addEventListener("item.deleted", function (e) {
      var gone = document.getElementById("item-" + JSON.parse(e.data).id);
      if (gone) gone.remove();
    });
    source.addEventListener("resync", function () { window.location.reload(); });
  }

  function upload(file, list, expires) {
    var row = el("li");
    var label = el("span", {}, file.name + " (" + sizeLabel(file.size) + ")");
    var bar = el("progress", { max: "100", value: "0" });
    row.appendChild(label);
    row.appendChild(bar);
    list.appendChild(row);
    var form = new FormData();
    form.append("expires", expires);
    form.append("file", file, file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/items");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
    xhr.onload = function () {
      if (xhr.status === 201) {
        bar.value = 100;
        label.textContent = file.name + " ✓";
        setTimeout(function () { row.remove(); }, 3000);
      } else {
        var msg = "upload failed (" + xhr.status + ")";
        try { msg = JSON.parse(xhr.responseText).message; } catch (ignored) { /* keep the status */ }
        label.textContent = file.name + ": " + msg;
        label.className = "error";
      }
    };
    xhr.onerror = function () { label.textContent = file.name + ": network error"; label.className = "error"; };
    xhr.send(form);
  }

  function uploads(formEl) {
    var zone = document.getElementById("dropzone");
    var input = document.getElementById("file-input");
    var list = document.getElementById("uploads");
    var expiry = function () { var s = document.querySelector(".note-form select[name=expires]"); return s ? s.value : "never"; };
    var send = function (files) { Array.prototype.forEach.call(files, function (f) { upload(f, list, expiry()); }); };
    input.addEventListener("change", function () { send(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) { if (e.dataTransfer) send(e.dataTransfer.files); });
    formEl.addEventListener("submit", function (e) { e.preventDefault(); send(input.files); });
  }

  function copy(text, button) {
    var done = function () { var old = button.textContent; button.textContent = "Copied"; setTimeout(function () { button.textContent = old; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      var area = el("textarea"); area.value = text; document.body.appendChild(area); area.select();
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
