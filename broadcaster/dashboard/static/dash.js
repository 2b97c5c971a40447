// broadcaster dashboard: progressive enhancement only; every page works without it.
(function () {
  "use strict";
  function csrf() {
    var el = document.querySelector('input[name="csrf"]');
    return el ? el.value : "";
  }
  // upload.js (loaded after this file, both deferred) posts with the same token.
  window.broadcasterCsrf = csrf;

  // <form data-confirm="Stop this campaign?">: ask first; the server asks when this cannot.
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (!f.dataset || !f.dataset.confirm) return;
    if (!window.confirm(f.dataset.confirm)) { ev.preventDefault(); return; }
    var c = f.querySelector('input[name="confirmed"]');
    if (c) c.value = "1";
  });

  // <section data-poll="/dashboard/x.json" data-interval="1000">: the JSON is
  // {"rows": {"<id>": {"<key>": value}}, "done": bool}; each value goes to the elements
  // [data-row="<id>"] [data-bind="<key>"] (a <progress> gets its value, others their text).
  function poll(el) {
    var url = el.dataset.poll, every = parseInt(el.dataset.interval || "1000", 10);
    function tick() {
      fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) {
          Object.keys(data.rows || {}).forEach(function (id) {
            var row = el.querySelector('[data-row="' + CSS.escape(id) + '"]');
            if (!row) return;
            var vals = data.rows[id];
            Object.keys(vals).forEach(function (k) {
              row.querySelectorAll('[data-bind="' + k + '"]').forEach(function (t) {
                if (t.tagName === "PROGRESS") { t.value = vals[k]; t.textContent = vals[k] + " %"; }
                else if (t.dataset.attr) { t.setAttribute(t.dataset.attr, vals[k]); }
                else { t.textContent = vals[k]; }
              });
            });
          });
          el.dataset.done = data.done ? "1" : "0";
          if (!data.done) setTimeout(tick, every);
          else if (el.dataset.refreshOnDone !== undefined) refresh();
        })
        .catch(function () { setTimeout(tick, every * 3); });
    }
    tick();
  }

  // Once a live thing is done, the page's [data-refresh-id] parts (charts, buttons) are
  // fetched again and swapped in place: up to date without reloading the page.
  function refresh() {
    fetch(location.href, {credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-refresh-id]").forEach(function (old) {
          var fresh = doc.querySelector('[data-refresh-id="' + CSS.escape(old.dataset.refreshId) + '"]');
          if (fresh) old.replaceWith(document.importNode(fresh, true));
        });
        document.body.dataset.refreshed = "1";
      });
  }

  // <form data-preview="/dashboard/x/preview" data-preview-target="#id">: the form's fields
  // are posted (debounced) and the answer's "text" (or "error") shown in the target.
  function preview(form) {
    var target = document.querySelector(form.dataset.previewTarget), timer = null;
    function run() {
      var body = new URLSearchParams(new FormData(form));
      fetch(form.dataset.preview, {method: "POST", body: body, credentials: "same-origin",
        headers: {"X-CSRF-Token": csrf(), "Accept": "application/json"}})
        .then(function (r) { return r.json(); })
        .then(function (d) {
          target.textContent = d.error ? d.error : d.text;
          target.classList.toggle("error", !!d.error);
          target.dataset.state = d.error ? "error" : "ok";
        });
    }
    function later() { clearTimeout(timer); timer = setTimeout(run, 300); }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    run();
  }

  // <select name="type"> shows only the [data-for-type] fieldsets of the chosen type (all of
  // them without JavaScript; the server reads only the chosen type's fields).
  function typeFields(sel) {
    function show() {
      document.querySelectorAll("[data-for-type]").forEach(function (f) {
        f.hidden = f.dataset.forType !== sel.value;
      });
    }
    sel.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var t = document.querySelector('form select[name="type"]');
    if (t && document.querySelector("[data-for-type]")) typeFields(t);
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("form[data-preview]").forEach(preview);
  });
})();
