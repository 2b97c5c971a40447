// Renders ../openapi.json without any library: the page must work with no internet access.
"use strict";
(function () {
  var doc;
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function resolve(o) {
    var seen = 0;
    while (o && o.$ref && seen++ < 20) {
      var parts = o.$ref.replace(/^#\//, "").split("/"), cur = doc;
      for (var i = 0; i < parts.length; i++) cur = cur && cur[parts[i]];
      o = cur || {};
    }
    return o || {};
  }
  function refName(o) { return o && o.$ref ? o.$ref.split("/").pop() : ""; }
  function typeOf(s) {
    var r = resolve(s), name = refName(s);
    if (r.anyOf) return r.anyOf.map(typeOf).join(" | ");
    var t = r.enum ? "enum" : (Array.isArray(r.type) ? r.type.join(" | ") : (r.type || "any"));
    if (t === "array") t = typeOf(r.items || {}) + "[]";
    return name && t === "object" ? name : t;
  }
  function limits(s) {
    var r = resolve(s), out = [];
    if (r.anyOf) r.anyOf.forEach(function (x) { if (resolve(x).type !== "null") out.push(limits(x)); });
    if (r.enum) out.push("one of " + r.enum.map(function (v) { return JSON.stringify(v); }).join(", "));
    [["minimum", "≥ "], ["maximum", "≤ "], ["minItems", "min items "], ["maxItems", "max items "],
     ["minLength", "min length "], ["maxLength", "max length "], ["maxProperties", "max keys "],
     ["default", "default "], ["pattern", "pattern "], ["format", ""]].forEach(function (p) {
      if (r[p[0]] !== undefined) out.push(p[1] + (p[0] === "default" ? JSON.stringify(r[p[0]]) : r[p[0]]));
    });
    if (r.type === "array" && r.items) { var inner = limits(r.items); if (inner) out.push("items: " + inner); }
    return out.filter(Boolean).join("; ");
  }
  function schemaHtml(s, depth) {
    var r = resolve(s);
    if (r.anyOf) { var nn = r.anyOf.filter(function (x) { return resolve(x).type !== "null"; }); if (nn.length === 1) r = resolve(nn[0]); }
    if (r.type === "array" && r.items) r = resolve(r.items);
    if (!r.properties || depth > 4) return "";
    var req = r.required || [], html = '<ul class="schema">';
    Object.keys(r.properties).forEach(function (k) {
      var p = r.properties[k], rp = resolve(p), lim = limits(p);
      html += "<li><code>" + esc(k) + "</code> <span class=t>" + esc(typeOf(p)) + "</span>" +
        (req.indexOf(k) >= 0 ? ' <span class=req>required</span>' : "") +
        (lim ? ' <span class=d>(' + esc(lim) + ")</span>" : "") +
        (rp.description ? ' <span class=d>— ' + esc(rp.description) + "</span>" : "") +
        schemaHtml(p, depth + 1) + "</li>";
    });
    if (r.additionalProperties && typeof r.additionalProperties === "object")
      html += "<li><code>&lt;key&gt;</code> <span class=t>" + esc(typeOf(r.additionalProperties)) + "</span>" + schemaHtml(r.additionalProperties, depth + 1) + "</li>";
    return html + "</ul>";
  }
  function opHtml(method, path, o) {
    var anchor = o.operationId, html = '<section class="op" id="' + esc(anchor) + '">';
    html += '<h2><span class="m ' + method + '">' + method.toUpperCase() + "</span>" + esc(path) + "</h2>";
    html += '<div class="id">' + esc(o.operationId) + (o.security && o.security.length === 0 ? " · no auth" : ' · <span class="lock">api_key + server JWT</span>') + "</div>";
    html += "<p>" + esc(o.summary || "") + "</p>";
    if (o.parameters && o.parameters.length) {
      html += "<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>notes</th></tr>";
      o.parameters.forEach(function (p) {
        var s = p.schema || (p.content && p.content["application/json"].schema) || {};
        html += "<tr><td><code>" + esc(p.name) + "</code>" + (p.required ? ' <span class=req>required</span>' : "") +
          "</td><td>" + esc(p.in) + (p.content ? " (JSON)" : "") + "</td><td class=t>" + esc(typeOf(s)) + "</td><td class=d>" +
          esc([p.description, limits(s)].filter(Boolean).join("; ")) + schemaHtml(s, 1) + "</td></tr>";
      });
      html += "</table>";
    }
    if (o.requestBody) {
      var bs = o.requestBody.content["application/json"].schema, rb = resolve(bs);
      html += "<h4>Request body" + (o.requestBody.required ? " (required)" : "") + " <span class=t>" + esc(typeOf(bs)) + "</span></h4>";
      if (rb.description) html += '<div class=d>' + esc(rb.description) + "</div>";
      html += schemaHtml(bs, 0);
    }
    html += "<h4>Responses</h4><table>";
    Object.keys(o.responses || {}).forEach(function (code) {
      var r = resolve(o.responses[code]), c = r.content || {}, ct = Object.keys(c)[0], s = ct ? c[ct].schema : null;
      html += "<tr><td><code>" + esc(code) + "</code></td><td>" + esc(r.description || "") +
        (s ? " <span class=t>" + esc(typeOf(s)) + "</span>" : "") +
        (r.headers ? ' <span class=d>headers: ' + esc(Object.keys(r.headers).join(", ")) + "</span>" : "") +
        (code[0] === "2" && s ? schemaHtml(s, 1) : "") + "</td></tr>";
    });
    return html + "</table></section>";
  }
  function render() {
    var byTag = {}, order = (doc.tags || []).map(function (t) { return t.name; });
    Object.keys(doc.paths).forEach(function (path) {
      Object.keys(doc.paths[path]).forEach(function (m) {
        var o = doc.paths[path][m], tag = (o.tags || ["Other"])[0];
        if (order.indexOf(tag) < 0) order.push(tag);
        (byTag[tag] = byTag[tag] || []).push([m, path, o]);
      });
    });
    var main = '<h1>' + esc(doc.info.title) + " API <small class=d>" + esc(doc.info.version) + '</small></h1><div class="intro">' +
      esc(doc.info.description || "") + '</div><p><a href="openapi.json">openapi.json</a> (OpenAPI ' + esc(doc.openapi) + ")</p>";
    var toc = "";
    order.forEach(function (tag) {
      if (!byTag[tag]) return;
      toc += "<h3>" + esc(tag) + "</h3>";
      main += '<h2 id="tag-' + esc(tag) + '">' + esc(tag) + "</h2>";
      byTag[tag].forEach(function (e) {
        toc += '<a href="#' + esc(e[2].operationId) + '" data-k="' + esc((e[2].operationId + " " + e[1]).toLowerCase()) + '"><span class="m ' + e[0] + '">' + e[0].toUpperCase() + "</span>" + esc(e[2].operationId) + "</a>";
        main += opHtml(e[0], e[1], e[2]);
      });
    });
    var errs = (doc.components && doc.components.schemas.Error) || null;
    if (errs) main += '<h2 id="errors">Errors</h2>' + schemaHtml(errs, 0);
    document.getElementById("main").innerHTML = main;
    document.getElementById("toc").innerHTML = toc;
    document.getElementById("search").addEventListener("input", function (ev) {
      var q = ev.target.value.toLowerCase();
      document.querySelectorAll("#toc a").forEach(function (a) { a.style.display = a.getAttribute("data-k").indexOf(q) >= 0 ? "" : "none"; });
    });
    if (location.hash) { var el = document.getElementById(location.hash.slice(1)); if (el) el.scrollIntoView(); }
  }
  fetch("openapi.json").then(function (r) { return r.json(); }).then(function (d) { doc = d; render(); })
    .catch(function (e) { document.getElementById("main").textContent = "Could not load openapi.json: " + e; });
})();
