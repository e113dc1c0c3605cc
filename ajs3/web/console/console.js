// The ajs3 console: one page over the REST API of `ajs3 web` (docs/web.md), nothing else.
// Every request carries the token typed in (kept for this tab only, sessionStorage);
// the page re-reads what it shows when the server's event stream says it changed.
"use strict";

const API = "/api/v1";
const COLOURS = {
  running: "#7fb8f0", ended_normally: "#8fd19e", ended_warning: "#ffe08a",
  ended_abnormally: "#f28b82", killed: "#f28b82", failed_to_start: "#f28b82",
  unknown: "#d7aefb", held: "#fdcfe8", waiting: "#e8eaed", wait_start_time: "#e8eaed",
  not_scheduled: "#ffffff", not_executed: "#cfd8dc", interrupted: "#cfd8dc",
};
const state = { token: sessionStorage.getItem("ajs3-token") || "", jobnet: null, run: null,
                unit: null, role: null, stream: null, collapsed: new Set() };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function when(ts) {
  if (ts === null || ts === undefined) return "-";
  return new Date(ts * 1000).toLocaleString();
}

function badge(status, label) {
  const b = el("span", { class: "status", "data-status": status || "" }, label || status || "-");
  b.style.background = COLOURS[status] || "#fff";
  return b;
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  opts.headers["Authorization"] = "Bearer " + state.token;
  const resp = await fetch(API + path, opts);
  const type = resp.headers.get("Content-Type") || "";
  const body = type.startsWith("application/json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const err = new Error(body.error ? `${body.error.code}: ${body.error.message}` : resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function say(text, ok) {
  const m = $("message");
  m.textContent = text;
  m.className = ok ? "ok" : "error";
}

// -- the tree of groups and jobnets ----------------------------------------------------

function renderTree(listing) {
  const root = { groups: new Map(), jobnets: [] };
  for (const j of listing.jobnets) {
    const parts = j.jobnet.split("/").filter(Boolean);
    let node = root;
    for (const g of parts.slice(0, -1)) {
      if (!node.groups.has(g)) node.groups.set(g, { groups: new Map(), jobnets: [] });
      node = node.groups.get(g);
    }
    node.jobnets.push(j);
  }
  const build = (node) => {
    const items = [];
    for (const [name, sub] of node.groups) {
      items.push(el("li", { class: "group" }, el("span", {}, "▾ " + name), el("ul", {}, ...build(sub))));
    }
    for (const j of node.jobnets) {
      const latest = j.latest;
      const status = j.suspended ? "suspended" : (latest ? latest.status : "");
      const li = el("li", { class: "jobnet" + (j.jobnet === state.jobnet ? " selected" : ""),
                            "data-jobnet": j.jobnet, "data-status": status },
        j.jobnet.split("/").pop(), " ",
        latest ? badge(latest.status, latest.label) : el("span", { class: "next" }, "never run"),
        j.suspended ? el("span", { class: "next" }, " suspended") : "",
        j.next_run ? el("span", { class: "next" }, " next " + when(j.next_run)) : "");
      li.addEventListener("click", () => select(j.jobnet, null));
      items.push(li);
    }
    return items;
  };
  $("tree").replaceChildren(...build(root));
}

// -- one jobnet: its graph and its run --------------------------------------------------

async function renderGraph() {
  const q = `?jobnet=${encodeURIComponent(state.jobnet)}` + (state.run ? `&run=${state.run}` : "") +
    (state.collapsed.size ? `&collapsed=${encodeURIComponent([...state.collapsed].join(","))}` : "");
  const text = await api("/graph" + q);
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  // imported first: listeners are not copied with a node
  const svg = document.importNode(doc.documentElement, true);
  for (const s of svg.querySelectorAll("script, foreignObject")) s.remove();
  for (const n of svg.querySelectorAll("*")) {
    for (const a of Array.from(n.attributes)) if (a.name.startsWith("on")) n.removeAttribute(a.name);
  }
  // a nested jobnet: a click on its box folds it into one node, a click on that node
  // unfolds it again
  for (const g of svg.querySelectorAll("g.cluster, g.node")) {
    if (!(g.id || "").startsWith("jobnet:")) continue;
    const path = g.id.slice("jobnet:".length);
    if (path === state.jobnet) continue;
    g.setAttribute("data-jobnet", path);
    g.style.cursor = "pointer";
    const folded = g.classList.contains("node");
    (folded ? g : (g.querySelector("text") || g)).addEventListener("click", (ev) => {
      ev.stopPropagation();
      if (folded) state.collapsed.delete(path); else state.collapsed.add(path);
      refresh();
    });
  }
  for (const g of svg.querySelectorAll("g.node")) {
    if ((g.id || "").startsWith("jobnet:")) continue;
    const path = (g.id || "").replace(/^unit:/, "");
    g.setAttribute("data-path", path);
    g.style.cursor = "pointer";
    g.addEventListener("click", () => selectUnit(path));
  }
  $("graph").replaceChildren(svg);
}

async function renderRun() {
  let run;
  try {
    run = state.run ? await api(`/runs/${state.run}`)
                    : await api(`/runs/latest?jobnet=${encodeURIComponent(state.jobnet)}`);
  } catch (e) {
    if (e.status !== 404) throw e;
    $("run-number").textContent = "(never run)";
    $("units").tBodies[0].replaceChildren();
    return;
  }
  $("run-number").textContent = run.run;
  $("run-number").dataset.run = run.run;
  const rows = run.units.map((u) => {
    const tr = el("tr", { class: "unit" + (u.path === state.unit ? " selected" : ""),
                          "data-path": u.path, "data-status": u.status },
      el("td", {}, "\u00a0\u00a0".repeat(u.depth) + (u.depth ? u.path.split("/").pop() : u.path)),
      el("td", {}, badge(u.status, u.label)),
      el("td", {}, u.attempt || "-"),
      el("td", {}, u.signal !== null ? "s" + u.signal : (u.exit_code ?? "-")),
      el("td", { class: "host" }, u.exec_host || "-"),
      el("td", {}, when(u.started_at)), el("td", {}, when(u.ended_at)),
      el("td", {}, u.reason || ""),
      el("td", {}, (u.delays || []).join(" ")));
    tr.addEventListener("click", () => selectUnit(u.path));
    return tr;
  });
  $("units").tBodies[0].replaceChildren(...rows);
  state.shownRun = run.run;
}

async function renderUnit() {
  if (!state.unit || !state.shownRun) { $("unit-detail").hidden = true; return; }
  $("unit-detail").hidden = false;
  $("unit-title").textContent = state.unit;
  const q = `?unit=${encodeURIComponent(state.unit)}`;
  try {
    const why = await api(`/runs/${state.shownRun}/why${q}`);
    const checks = (why.checks || []).map((c) => typeof c === "string" ? c : JSON.stringify(c));
    $("unit-why").textContent = `${why.label}: ${why.reason || ""} ${checks.join("; ")}`;
  } catch (e) { $("unit-why").textContent = e.message; }
  try {
    renderEvents(await api(`/runs/${state.shownRun}/events${q}`));
  } catch (e) {
    $("unit-host").textContent = e.message;
    $("unit-events").tBodies[0].replaceChildren();
  }
  followOutput(`/runs/${state.shownRun}/log${q}`);
}

// -- a unit's output, followed while its job runs ------------------------------------------

// The output shown: read from where the last read ended (?from=N) every FOLLOW ms
// until the server says the job's attempt has ended; at most KEEP characters kept.
const FOLLOW = 1000;
const KEEP = 1 << 20;
const output = { url: null, gen: 0, running: 0, next: null, runId: null, text: "", decoder: null };

function followOutput(url) {
  if (url !== output.url) {
    Object.assign(output, { url, gen: output.gen + 1, next: null, runId: null, text: "",
                            decoder: new TextDecoder() });
    $("unit-output").textContent = "";
    $("output-state").textContent = "";
  }
  // one reader per unit shown; a refresh (a status changed) wakes an idle one up
  if (output.running !== output.gen) readOutput(output.gen);
}

async function readOutput(gen) {
  output.running = gen;
  const pre = $("unit-output");
  try {
    for (;;) {
      let out;
      try {
        out = await api(output.url + (output.next === null ? "" : `&from=${output.next}`));
      } catch (e) {
        if (output.gen === gen && output.next === null) {
          pre.textContent = e.status === 404 ? "(no output)" : e.message;
          $("output-state").textContent = "";
        }
        return;
      }
      if (output.gen !== gen) return;
      if (output.runId !== null && out.run_id !== output.runId) {
        // another attempt (a retry, a rerun): its own file, from its start
        Object.assign(output, { next: null, runId: null, text: "", decoder: new TextDecoder() });
        continue;
      }
      output.runId = out.run_id;
      const bytes = Uint8Array.from(atob(out.data), (c) => c.charCodeAt(0));
      output.next = out.offset + bytes.length;
      const last = out.ended && output.next >= out.size;
      output.text += output.decoder.decode(bytes, { stream: !last });
      if (output.text.length > KEEP) output.text = output.text.slice(-KEEP);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = output.text;
      pre.dataset.next = String(output.next);
      pre.dataset.ended = String(last);
      $("output-state").textContent = last ? "" : "(following while it runs)";
      if (atEnd) pre.scrollTop = pre.scrollHeight;
      if (output.next < out.size) continue;
      if (out.ended) return;
      await new Promise((r) => setTimeout(r, FOLLOW));
      if (output.gen !== gen) return;
    }
  } finally {
    if (output.running === gen) output.running = 0;
  }
}

// A unit's status changes, oldest first, and the host its job ran on.
function renderEvents(ev) {
  $("unit-host").textContent = (ev.exec_host ? `on ${ev.exec_host}` : "on the logical host's node") +
    (ev.truncated ? `, the newest ${ev.events.length} changes` : "");
  $("unit-host").dataset.host = ev.exec_host || "";
  const rows = ev.events.map((e) => el("tr", { class: "event", "data-status": e.new },
    el("td", {}, when(e.at)), el("td", {}, e.attempt || "-"),
    el("td", {}, `${e.old} \u2192 `, badge(e.new, e.label)),
    el("td", {}, e.code), el("td", {}, e.reason)));
  $("unit-events").tBodies[0].replaceChildren(...rows);
}

// -- the timeline ----------------------------------------------------------------------

function renderTimeline(t) {
  const NS = "http://www.w3.org/2000/svg";
  const names = [...new Set([...t.runs.map((r) => r.jobnet), ...t.planned.map((p) => p.jobnet)])].sort();
  const width = 1000, left = 220, row = 22, height = row * (names.length + 1) + 10;
  const x = (ts) => left + (width - left) * (ts - t.from) / (t.to - t.from);
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", "100%");
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  const now = Date.now() / 1000;
  add("line", { x1: x(now), x2: x(now), y1: 0, y2: height, stroke: "#1a73e8", "stroke-dasharray": "4 2" });
  names.forEach((name, i) => add("text", { x: 4, y: row * (i + 1), "font-size": 12 }, name));
  for (const r of t.runs) {
    const y = row * (names.indexOf(r.jobnet) + 1) - 12;
    const start = Math.max(r.started_at ?? r.scheduled_at, t.from);
    const end = Math.min(r.ended_at ?? now, t.to);
    const rect = add("rect", { x: x(start), y, width: Math.max(3, x(end) - x(start)), height: 14,
      fill: COLOURS[r.status] || "#ccc", stroke: r.delays.length ? "#d93025" : "#5f6368",
      "stroke-width": r.delays.length ? 2 : 0.5, "data-run": r.run, "data-status": r.status,
      "data-jobnet": r.jobnet, class: "bar" });
    const tip = document.createElementNS(NS, "title");
    tip.textContent = `run ${r.run} ${r.jobnet}: ${r.status}` + (r.delays.length ? ` (${r.delays.join(", ")})` : "");
    rect.append(tip);
    rect.style.cursor = "pointer";
    rect.addEventListener("click", () => select(r.jobnet, r.run));
  }
  for (const p of t.planned) {
    if (p.change === "skipped" || p.change === "moved") continue;
    const y = row * (names.indexOf(p.jobnet) + 1) - 12;
    add("rect", { x: x(p.due), y, width: 6, height: 14, fill: "none", stroke: "#1a73e8",
                  "data-planned": p.jobnet, class: "planned" });
  }
  $("timeline").replaceChildren(svg);
}

// -- loading and updating ---------------------------------------------------------------

// One refresh at a time; one asked for while another runs is done after it (that one
// may have read the API before the change that asked for this one).
let refreshing = null;
let again = false;
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      try {
        const [listing, timeline] = await Promise.all([api("/jobnets"), api("/timeline")]);
        renderTree(listing);
        renderTimeline(timeline);
        if (state.jobnet) {
          $("jobnet-title").textContent = state.jobnet;
          await renderRun();
          await renderGraph();
          await renderUnit();
        }
        document.body.dataset.refreshed = String(Date.now());
      } catch (e) {
        say(e.message, false);
      }
    } while (again);
    refreshing = null;
  })();
  return refreshing;
}

function select(jobnet, run) {
  if (jobnet !== state.jobnet) state.collapsed = new Set();
  state.jobnet = jobnet;
  state.run = run;
  state.unit = null;
  refresh();
}

function selectUnit(path) {
  state.unit = path;
  refresh();
}

async function follow() {
  // EventSource cannot send a token: the stream is read with fetch instead.
  while (state.token) {
    try {
      const resp = await fetch(API + "/events", { headers: { Authorization: "Bearer " + state.token } });
      if (!resp.ok) throw new Error(resp.statusText);
      $("live").textContent = "● live";
      $("live").className = "on";
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (message.split("\n").includes("event: change")) refresh();
        }
      }
    } catch (e) { /* the server went away: try again below */ }
    $("live").textContent = "○ offline";
    $("live").className = "";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function act(action) {
  const body = {
    entry: { jobnet: state.jobnet }, suspend: { jobnet: state.jobnet },
    resume: { jobnet: state.jobnet },
    rerun: { mode: "failed", run: state.shownRun }, kill: { run: state.shownRun, jobnet: state.jobnet },
    hold: { unit: state.unit, run: state.shownRun }, release: { unit: state.unit, run: state.shownRun },
  }[action];
  try {
    const result = await api("/actions/" + action, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    say(`${action}: done ${JSON.stringify(result)}`, true);
    if (action === "entry" && result.run) state.run = null;
    refresh();
  } catch (e) {
    say(`${action}: ${e.message}`, false);
  }
}

async function start() {
  try {
    const who = await api("/whoami");
    state.role = who.role;
    $("who").textContent = `${who.name} (${who.role})`;
    document.body.dataset.role = who.role;
    const status = await api("/status");
    $("lhost").textContent = status.lhost;
    say("", true);
    await refresh();
    follow();
  } catch (e) {
    say(e.status === 401 ? "sign in with a token" : e.message, false);
  }
}

$("signin").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("ajs3-token", state.token);
  $("token").value = "";
  start();
});
for (const b of document.querySelectorAll("button[data-action]")) {
  b.addEventListener("click", () => act(b.dataset.action));
}
if (state.token) start();
