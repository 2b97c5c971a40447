// Segment target upload: the file is read in the browser, split into chunks of the API's
// per-call limit (data-chunk) and posted one after another, each an all-or-nothing
// AddSegmentTargets call; the <progress> follows the chunks the server confirmed.
(function () {
  "use strict";
  var csrf = window.broadcasterCsrf;

  // One CSV line into cells: commas, "quoted, cells" and "" escapes.
  function cells(line) {
    var out = [], cur = "", quoted = false;
    for (var i = 0; i < line.length; i++) {
      var c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; }
        else if (c === '"') { quoted = false; }
        else { cur += c; }
      } else if (c === '"') { quoted = true; }
      else if (c === ",") { out.push(cur); cur = ""; }
      else { cur += c; }
    }
    out.push(cur);
    return out.map(function (s) { return s.trim(); });
  }

  function ids(text, column) {
    var lines = text.split(/\r?\n/), col = 0, start = 0, seen = new Set(), out = [];
    if (column) {
      col = cells(lines[0] || "").indexOf(column);
      if (col < 0) throw new Error('column "' + column + '" is not in the first line: ' + (lines[0] || "(empty)"));
      start = 1;
    }
    for (var i = start; i < lines.length; i++) {
      if (!lines[i].trim()) continue;
      var v = cells(lines[i])[col];
      if (v && !seen.has(v)) { seen.add(v); out.push(v); }
    }
    return out;
  }

  function setup(form) {
    var bar = document.getElementById("upload-bar"), box = document.getElementById("upload-progress");
    var status = document.getElementById("upload-status"), err = document.getElementById("e-file");
    var size = parseInt(form.dataset.chunk, 10);

    function fail(msg) {
      err.textContent = msg; err.hidden = false;
      form.dataset.state = "error";
    }

    function refresh() {
      // the targets list and the size as the server has them now
      return fetch(window.location.pathname, {credentials: "same-origin"})
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          ["targets", "seg-size"].forEach(function (id) {
            var fresh = doc.getElementById(id), here = document.getElementById(id);
            if (fresh && here) here.innerHTML = fresh.innerHTML;
          });
        });
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var file = form.querySelector('input[type="file"]').files[0];
      err.hidden = true; err.textContent = "";
      if (!file) { fail("Choose a file first."); return; }
      form.dataset.state = "reading";
      file.text().then(function (text) {
        var all;
        try { all = ids(text, form.querySelector('input[name="column"]').value.trim()); }
        catch (e) { fail(e.message); return; }
        if (!all.length) { fail("The file has no ids."); return; }
        var done = 0, added = 0, chunks = Math.ceil(all.length / size), n = 0;
        box.hidden = false; bar.max = all.length; bar.value = 0;
        form.dataset.state = "uploading";
        function next() {
          if (done >= all.length) {
            status.textContent = "Done: " + all.length.toLocaleString() + " ids in " + chunks +
              (chunks === 1 ? " call" : " calls") + ", " + added.toLocaleString() + " new.";
            return refresh().then(function () { form.dataset.state = "done"; });
          }
          var part = all.slice(done, done + size);
          n++;
          status.textContent = "Sending part " + n + " of " + chunks + "…";
          return fetch(form.dataset.url, {method: "POST", credentials: "same-origin",
            headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf()},
            body: JSON.stringify({target_ids: part})})
            .then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
            .then(function (res) {
              if (!res[0]) {
                fail("Part " + n + " of " + chunks + " was refused (" + done.toLocaleString() +
                  " ids were added before it): " + (res[1].error || "error"));
                return null;
              }
              done += part.length; added += res[1].added;
              bar.value = done; bar.textContent = Math.round(100 * done / all.length) + " %";
              status.textContent = done.toLocaleString() + " of " + all.length.toLocaleString() + " ids sent";
              return next();
            });
        }
        return next();
      }).catch(function (e) { fail("Upload failed: " + e.message); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var f = document.getElementById("upload");
    if (f) setup(f);
  });
})();
