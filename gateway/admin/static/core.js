// Core of the dashboard: API calls with the tab's API key, the live event
// stream, the hash router and small DOM helpers. No framework, no build step.
"use strict";

const OJS = (() => {
  const API = "/ojs/v1/admin";
  const KEY_STORAGE = "ojs-api-key";
  const views = {};
  let refreshTimer = null;
  let lastRefresh = 0;
  let keyPrompt = null;

  // ---- DOM ----

  // h("a", {href: "#"}, "text", child): children may be strings, nodes, arrays or null.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "class") el.className = value;
      // Through CSSOM: the page's CSP forbids inline style attributes.
      else if (name === "style") el.style.cssText = value;
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) append(el, child);
      else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) el.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function badge(state) {
    return h("span", {class: `badge s-${state}`}, state);
  }

  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function ago(iso) {
    if (!iso) return "—";
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    const abs = Math.abs(s);
    const text = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.round(abs / 60)}m` : abs < 86400 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86400)}d`;
    return s >= 0 ? `${text} ago` : `in ${text}`;
  }

  function timeCell(iso) {
    return h("time", {datetime: iso || "", title: fmtTime(iso)}, ago(iso));
  }

  function num(n) {
    return Number(n || 0).toLocaleString();
  }

  function json(value) {
    return h("pre", {class: "mono"}, JSON.stringify(value, null, 2));
  }

  function flash(message, isError) {
    const el = document.getElementById("flash");
    el.textContent = message;
    el.className = isError ? "error" : "";
    el.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { el.hidden = true; }, isError ? 8000 : 3000);
  }

  // ---- API ----

  function apiKey() {
    return sessionStorage.getItem(KEY_STORAGE);
  }

  function headers(extra) {
    const out = Object.assign({Accept: "application/json"}, extra || {});
    const key = apiKey();
    if (key) out.Authorization = `Bearer ${key}`;
    return out;
  }

  // Ask for the key once; concurrent 401s share one prompt.
  function askKey() {
    if (keyPrompt) return keyPrompt;
    keyPrompt = new Promise((resolve) => {
      const dialog = document.getElementById("key-dialog");
      const input = document.getElementById("key-input");
      input.value = "";
      dialog.addEventListener("close", () => {
        if (input.value) sessionStorage.setItem(KEY_STORAGE, input.value);
        keyPrompt = null;
        resolve();
      }, {once: true});
      dialog.showModal();
      input.focus();
    });
    return keyPrompt;
  }

  class ApiError extends Error {
    constructor(status, body) {
      const err = (body && body.error) || {};
      super(err.message || `HTTP ${status}`);
      this.status = status;
      this.code = err.code;
    }
  }

  // path: absolute ("/ojs/v1/...") or relative to the admin prefix ("/queues").
  async function api(path, options) {
    const opts = options || {};
    const url = path.startsWith("/ojs/") ? path : API + path;
    for (let attempt = 0; attempt < 3; attempt++) {
      const init = {method: opts.method || "GET", headers: headers(opts.body ? {"Content-Type": "application/json"} : null)};
      if (opts.body) init.body = JSON.stringify(opts.body);
      const response = await fetch(url, init);
      if (response.status === 401) {
        sessionStorage.removeItem(KEY_STORAGE);
        await askKey();
        continue;
      }
      const body = response.status === 204 ? null : await response.json().catch(() => null);
      if (!response.ok) throw new ApiError(response.status, body);
      return body;
    }
    throw new ApiError(401, {error: {message: "API key rejected"}});
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    const text = q.toString();
    return text ? `?${text}` : "";
  }

  // Run an action from a button: disable it meanwhile, report the outcome, refresh the view.
  async function act(button, action, done) {
    if (button) button.disabled = true;
    try {
      const result = await action();
      if (done) flash(typeof done === "function" ? done(result) : done);
      refresh(true);
      return result;
    } catch (error) {
      flash(error.message, true);
      return null;
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- Live events ----
  // EventSource cannot send an Authorization header, so the stream is read with
  // fetch and parsed here; it reconnects with Last-Event-ID after a failure.

  const listeners = new Set();
  let lastEventId = "";

  function setLive(on, text) {
    const el = document.getElementById("live");
    el.classList.toggle("on", on);
    el.textContent = text;
  }

  function dispatch(frame) {
    let data = null;
    for (const line of frame.split("\n")) {
      if (line.startsWith("id:")) lastEventId = line.slice(3).trim();
      else if (line.startsWith("data:")) data = (data === null ? "" : data + "\n") + line.slice(5).trimStart();
    }
    if (data === null) return;
    let event;
    try { event = JSON.parse(data); } catch { return; }
    for (const listener of listeners) listener(event);
  }

  async function stream() {
    let delay = 1000;
    for (;;) {
      try {
        const extra = lastEventId ? {"Last-Event-ID": lastEventId, Accept: "text/event-stream"} : {Accept: "text/event-stream"};
        const response = await fetch(`${API}/events`, {headers: headers(extra)});
        if (response.status === 401) { await askKey(); continue; }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        setLive(true, "live");
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            dispatch(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
      } catch (error) {
        // Reconnect below.
      }
      setLive(false, "reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  // Events schedule a refresh of the current view: at most one per second,
  // however many events arrive, so a busy server does not cause a request storm.
  function refresh(now) {
    if (now) {
      clearTimeout(refreshTimer);
      refreshTimer = null;
      lastRefresh = Date.now();
      render(false);
      return;
    }
    if (refreshTimer) return;
    const wait = Math.max(0, 1000 - (Date.now() - lastRefresh));
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      lastRefresh = Date.now();
      render(false);
    }, wait);
  }

  listeners.add((event) => {
    const view = views[route().name];
    if (view && (!view.live || view.live(event, route()))) refresh(false);
  });

  // ---- Router ----
  // #/name/arg?key=value: the view `name` renders into <main> with (arg, params).

  function route() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [path, search] = hash.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return {name: parts[0] || "overview", arg: parts.slice(1).join("/"), params: new URLSearchParams(search || "")};
  }

  let renderSeq = 0;

  async function render(fresh) {
    const r = route();
    const view = views[r.name] || views.overview;
    const seq = ++renderSeq;
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === r.name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    const main = document.getElementById("main");
    try {
      const content = await view.render(r.arg, r.params);
      if (seq !== renderSeq) return;  // a newer render started meanwhile
      const keep = fresh ? null : saveFocus(main);
      const fragment = document.createDocumentFragment();
      append(fragment, [content]);
      main.replaceChildren(fragment);
      if (keep) restoreFocus(keep);
      if (fresh) {
        document.title = `${view.title ? view.title(r.arg) : r.name} · OJS admin`;
        main.focus({preventScroll: true});
      }
    } catch (error) {
      if (seq !== renderSeq) return;
      main.replaceChildren(h("h1", {}, "Error"), h("p", {class: "muted"}, error.message));
    }
  }

  // A live refresh must not steal focus or lose what the user typed in a filter.
  function saveFocus(main) {
    const el = document.activeElement;
    if (!el || !main.contains(el) || !el.id) return null;
    return {id: el.id, value: el.value, start: el.selectionStart};
  }

  function restoreFocus(keep) {
    const el = document.getElementById(keep.id);
    if (!el) return;
    el.focus({preventScroll: true});
    if ("value" in el && keep.value !== undefined) el.value = keep.value;
    try { if (keep.start !== null) el.setSelectionRange(keep.start, keep.start); } catch { /* not a text input */ }
  }

  function go(hash) {
    if (location.hash === hash) render(true);
    else location.hash = hash;
  }

  // ---- Cursor pager ----
  // The API pages by opaque cursors; the previous cursors are kept in the URL
  // so Back works and a live refresh stays on the same page.

  function pager(params, pagination, base) {
    const stack = (params.get("prev") || "").split(",").filter(Boolean);
    const current = params.get("cursor") || "";
    const link = (cursor, prev) => {
      const next = new URLSearchParams(params);
      if (cursor) next.set("cursor", cursor); else next.delete("cursor");
      if (prev.length) next.set("prev", prev.join(",")); else next.delete("prev");
      return `${base}?${next.toString()}`;
    };
    const older = stack.slice(0, -1);
    const prevCursor = stack.length ? stack[stack.length - 1] : null;
    const total = pagination ? pagination.total : 0;
    return h("div", {class: "pager"},
      h("button", {type: "button", disabled: !current, onclick: () => go(link(prevCursor === "-" ? "" : prevCursor, older))}, "← Previous"),
      h("button", {type: "button", disabled: !(pagination && pagination.has_more), onclick: () => go(link(pagination.next_cursor, [...stack, current || "-"]))}, "Next →"),
      h("span", {class: "muted"}, `${num(total)} total`));
  }

  function register(name, view) {
    views[name] = view;
  }

  function start() {
    document.getElementById("key-form").addEventListener("submit", () => {});
    window.addEventListener("hashchange", () => render(true));
    render(true);
    stream();
  }

  return {h, svg, badge, fmtTime, ago, timeCell, num, json, flash, api, query, act, refresh, register, start, go, pager, listeners};
})();
