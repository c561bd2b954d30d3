
(function () {
  "use strict";
  // The status page: polls status.json while the page is visible and
  // redraws what changed; its buttons POST/DELETE to the admin endpoints
  // with the CSRF token this page was served with (and the admin token,
  // when one is configured and typed in). It builds the DOM with
  // textContent only: nothing from the server is parsed as HTML.
  var body = document.body;
  var csrf = body.dataset.csrf;
  var period = Number(body.dataset.poll) || 2000;
  var timer = null, busy = false, now = "";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      parent.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return parent;
  }
  function zero(t) { return !t || t.indexOf("0001-") === 0; }
  function utc(t) { return zero(t) ? "\u2014" : new Date(t).toISOString().slice(0, 19).replace("T", " ") + "Z"; }
  function rel(t) {
    if (zero(t)) return "";
    var d = (Date.parse(now) - Date.parse(t)) / 1000, past = d >= 0, s;
    d = Math.abs(d);
    if (d < 60) s = Math.floor(d) + " s";
    else if (d < 3600) s = Math.floor(d / 60) + " min";
    else if (d < 48 * 3600) s = Math.floor(d / 3600) + " h";
    else s = Math.floor(d / 86400) + " d";
    return past ? s + " ago" : "in " + s;
  }
  function rate(s) { return s.window_seconds ? s.requests_per_second.toFixed(1) : "\u2013"; }
  function pct(s) { return s.window_seconds && s.requests_per_second ? (s.error_rate * 100).toFixed(1) + " %" : "\u2013"; }
  function latency(s) {
    if (!s.window_seconds || !s.requests_per_second) return "\u2013";
    return s.latency_ms < 10 ? s.latency_ms.toFixed(1) + " ms" : s.latency_ms.toFixed(0) + " ms";
  }
  function table(heads, rows) {
    var t = el("table"), tr = el("tr");
    heads.forEach(function (h) { add(tr, el("th", h.charAt(0) === "#" ? "n" : "", h.replace("#", ""))); });
    add(t, add(el("thead"), tr));
    var tb = el("tbody");
    rows.forEach(function (r) { add(tb, r); });
    return add(t, tb);
  }
  function td(cls) { return add.apply(null, [el("td", cls)].concat([].slice.call(arguments, 1))); }
  function button(label, data) {
    var b = el("button", "", label);
    Object.keys(data).forEach(function (k) { b.dataset[k] = data[k]; });
    return b;
  }
  function none(text) { return el("p", "none", text); }

  function reload(r) {
    var f = el("div");
    add(f, "Configuration ", add(el("code", "", r.hash.slice(0, 12)), null),
      r.path ? " from " : " (embedded)", r.path ? el("code", "", r.path) : null,
      ", loaded " + utc(r.loaded_at) + " (" + rel(r.loaded_at) + ").\n");
    f.firstElementChild.title = "SHA-256 " + r.hash;
    add(f, r.last_ok ? el("span", "ok", "Last reload " + utc(r.last_attempt) + ": ok.")
      : el("span", "bad", "Last reload " + utc(r.last_attempt) + " failed; the configuration above is still serving: " + r.last_error));
    return f;
  }
  function upstreams(list) {
    var f = el("div");
    if (!list.length) return add(f, none("No upstreams."));
    list.forEach(function (u) {
      var d = el("div", "upstream");
      d.dataset.upstream = u.name;
      var h = u.health ? " \u00b7 health check " + u.health.method + " " + u.health.path + " every " + u.health.interval : " \u00b7 passive health only";
      add(d, add(el("h3", "", u.name + " "), el("small", "", u.policy + h)));
      add(d, table(["Server", "State", "#In flight", "#Queue", "#WebSockets", "#Req/s", "#5xx", "#Failures", "#Latency", "Last check", ""],
        u.servers.map(function (s) {
          var tr = el("tr", "server st-" + s.state.replace(" ", "-"));
          tr.dataset.server = s.label;
          var c = s.last_check;
          var action = s.drained_by_config ? el("small", "detail", "drain = true in the configuration")
            : button(s.draining ? "Undrain" : "Drain", { action: s.draining ? "undrain" : "drain", upstream: u.name, server: s.name });
          return add(tr,
            td("", s.label + " ", el("span", "addr", s.addr), s.backup ? " " : null, s.backup ? el("span", "tag", "backup") : null),
            td("", el("span", "state", s.state), s.detail ? " " : null, s.detail ? el("small", "detail", s.detail) : null),
            td("n", String(s.in_flight)), td("n", String(s.queue)), td("n", String(s.websockets)),
            td("n", rate(s)), td("n", pct(s)), td("n", s.window_seconds ? String(s.failures) : "\u2013"), td("n", latency(s)),
            c ? td("", el("span", c.ok ? "ok" : "bad", c.ok ? "pass" : "fail"), " " + rel(c.at) + " ", el("small", "detail", c.reason)) : td("", "\u2014"),
            td("", action));
        })));
      add(f, d);
    });
    return f;
  }
  function certificates(list) {
    var f = el("div");
    if (!list.length) return add(f, none("No certificates (no HTTPS site)."));
    return add(f, table(["Names", "Source", "Issuer", "Expires", "Next renewal"], list.map(function (c) {
      var renew = !zero(c.renew_at) ? utc(c.renew_at) + " (" + rel(c.renew_at) + ")" : c.source === "file" ? "when the file changes" : "\u2014";
      return add(el("tr"), td("", c.names.join(", ")), td("", c.source, c.file ? " " : null, c.file ? el("small", "detail", c.file) : null),
        td("", c.issuer || "\u2014"), td("", zero(c.not_after) ? "not obtained yet" : utc(c.not_after) + " (" + rel(c.not_after) + ")"), td("", renew));
    })));
  }
  function bans(b) {
    var f = el("div");
    if (!b) return add(f, none("Bans are off ([ban] enabled = false)."));
    add(f, el("p", "", b.count + " active " + (b.count === 1 ? "ban" : "bans") + (b.latest.length ? "; the latest:" : ".")));
    if (b.latest.length) {
      add(f, table(["Address", "Reason", "Since", "Until", ""], b.latest.map(function (x) {
        var tr = el("tr", "ban");
        tr.dataset.addr = x.addr;
        return add(tr, td("", x.addr), td("", x.reason), td("", utc(x.since)), td("", utc(x.until) + " (" + rel(x.until) + ")"),
          td("", button("Lift", { action: "unban", addr: x.addr })));
      })));
    }
    return f;
  }
  function sites(list) {
    var f = el("div");
    if (!list.length) return add(f, none("No sites."));
    list.forEach(function (s) {
      add(f, add(el("div", "site"), add(el("h3", "", s.name + " "), el("small", "", s.hosts.join(", ") + " \u00b7 TLS " + s.tls)),
        table(["Route", "Upstream", "WebSocket"], s.routes.map(function (r) {
          return add(el("tr"), td("", el("code", "", r.path)), td("", r.upstream || "\u2014"), td("", r.websocket ? "yes" : "no"));
        }))));
    });
    return f;
  }
  // swap replaces the children of #id with those of f when they differ,
  // so that an unchanged section keeps its focus and selection.
  function swap(id, f) {
    var cur = document.getElementById(id);
    if (cur.innerHTML !== f.innerHTML) cur.replaceChildren.apply(cur, Array.prototype.slice.call(f.childNodes));
  }
  function render(s) {
    now = s.now;
    document.getElementById("version").textContent = "version " + s.version;
    document.getElementById("auth").hidden = !s.token_required;
    swap("config", reload(s.reload));
    swap("upstreams", upstreams(s.upstreams));
    swap("certificates", certificates(s.certificates));
    swap("bans", bans(s.bans));
    swap("sites", sites(s.sites));
  }
  function live(ok, why) {
    var l = document.getElementById("live");
    l.textContent = ok ? "live \u00b7 updated " + utc(now) : "not updating: " + why;
    l.classList.toggle("stale", !ok);
  }
  function message(text, bad) {
    var m = document.getElementById("message");
    m.textContent = text;
    m.hidden = false;
    m.classList.toggle("bad", !!bad);
  }

  function poll() {
    timer = null;
    if (busy || document.visibilityState !== "visible") return;
    busy = true;
    fetch("status.json", { cache: "no-store", credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("status.json: HTTP " + r.status);
      return r.json();
    }).then(function (s) { render(s); live(true); }, function (e) { live(false, e.message); }).then(function () {
      busy = false;
      schedule();
    });
  }
  function schedule() {
    if (timer === null && document.visibilityState === "visible") timer = setTimeout(poll, period);
  }
  document.addEventListener("visibilitychange", function () {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (document.visibilityState === "visible") poll();
  });

  function act(b) {
    var d = b.dataset, url, method = "POST", what;
    if (d.action === "unban") {
      url = "bans?addr=" + encodeURIComponent(d.addr);
      method = "DELETE";
      what = "lift the ban on " + d.addr;
    } else {
      url = "upstreams/" + encodeURIComponent(d.upstream) + "/servers/" + encodeURIComponent(d.server) + "/" + d.action;
      what = d.action + " " + d.upstream + "/" + d.server;
    }
    var headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf };
    var token = document.getElementById("token").value;
    if (token) headers.Authorization = "Bearer " + token;
    b.disabled = true;
    fetch(url, { method: method, headers: headers, body: "{}", credentials: "same-origin" }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) throw new Error("HTTP " + r.status + (j.error ? ": " + j.error : ""));
        message("Done: " + what + ".", false);
      });
    }).catch(function (e) { message("Could not " + what + ": " + e.message, true); }).then(function () {
      b.disabled = false;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      poll();
    });
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-action]");
    if (b) act(b);
  });
  schedule();
})();
