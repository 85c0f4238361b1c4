// The jobsim dashboard's client: reads the live feed (/events, server-sent events read with
// fetch so the API key can go in an Authorization header), draws it, and calls the service's
// JSON routes for dead letters, jobs (inspect, cancel), submit, pause/resume and the teaching
// scenarios. No build step.
"use strict";

const KEY_STORE = "jobsim.apiKey";
const MAX_POINTS = 300;
const $ = (id) => document.getElementById(id);
const CANCELLABLE = new Set(["scheduled", "queued", "retrying", "processing"]);
const state = { last: null, inspected: null, openTracebacks: new Set(), charts: {}, series: { t: [], done: [], failed: [], retried: [], mean: [], max: [] } };

// --- the API key: ?key= once (then dropped from the address bar), or asked for -------------
(function takeKeyFromUrl() {
  const url = new URL(window.location.href);
  if (url.searchParams.has("key")) {
    sessionStorage.setItem(KEY_STORE, url.searchParams.get("key"));
    url.searchParams.delete("key");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra || {});
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

let keyWaiters = [];
function askForKey() {
  $("key-form").hidden = false;
  $("key-input").focus();
  return new Promise((resolve) => keyWaiters.push(resolve));
}
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("key-input").value);
  $("key-form").hidden = true;
  keyWaiters.forEach((resolve) => resolve());
  keyWaiters = [];
});

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

// A failed call shows its error until the next call the user makes succeeds; `background`
// calls (the job view's refresh on every snapshot) never clear it, so a 409 stays readable.
async function api(path, options, background) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.body ? { "Content-Type": "application/json" } : {});
  for (;;) {
    const response = await fetch(path, opts);
    if (response.status === 401) {
      await askForKey();
      opts.headers = headers(opts.body ? { "Content-Type": "application/json" } : {});
      continue;
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const detail = body && body.detail ? body.detail : response.statusText;
      showError(`${opts.method || "GET"} ${path}: ${response.status} ${detail}`);
      throw new Error(detail);
    }
    if (!background) showError("");
    return body;
  }
}

// --- the live feed -------------------------------------------------------------------------
function setLive(on, text) {
  const badge = $("live");
  badge.textContent = text;
  badge.className = "badge " + (on ? "on" : "off");
}

async function follow() {
  for (;;) {
    try {
      const response = await fetch("events", { headers: headers({ Accept: "text/event-stream" }) });
      if (response.status === 401) {
        setLive(false, "needs the API key");
        await askForKey();
        continue;
      }
      if (!response.ok) throw new Error(`${response.status}`);
      setLive(true, "live");
      await readEvents(response.body.getReader());
    } catch (err) {
      setLive(false, "reconnecting…");
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trim());
      }
      if (event === "snapshot") onSnapshot(JSON.parse(data.join("\n")));
      else if (event === "unavailable") setLive(false, "Redis unreachable");
    }
  }
}

// --- drawing -------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child === null || child === undefined ? "" : child);
  return node;
}

function fill(tbody, rows, empty) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 6, class: "muted" }, empty))]));
}

const fmt = (x, digits) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits === undefined ? 2 : digits));
const clock = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "–");

function onSnapshot(s) {
  const prev = state.last;
  state.last = s;
  drawCounts(s);
  drawCharts(s, prev);
  drawWorkers(s);
  drawRunning(s);
  drawDead(s);
  narrate(s, prev);
  onListSnapshot(s);
  if (state.inspected) inspect(state.inspected, true);
}

function drawCounts(s) {
  $("counts").replaceChildren(
    ...Object.entries(s.counts).map(([status, n]) =>
      el("div", { class: "card status-" + status, "data-status": status },
        el("div", { class: "n" }, String(n)), el("div", { class: "label" }, status)))
  );
  $("paused").hidden = !s.paused;
  $("totals").textContent = Object.entries(s.totals).map(([k, v]) => `${k} ${v}`).join(" · ") || "none yet";
  const select = $("list-status");
  const statuses = Object.keys(s.counts);
  if (select.options.length !== statuses.length) {
    select.replaceChildren(...statuses.map((st) => el("option", { value: st }, st)));
  }
}

function rate(s, prev, name) {
  if (!prev) return null;
  const dt = s.time - prev.time;
  return dt > 0 ? ((s.totals[name] || 0) - (prev.totals[name] || 0)) / dt : null;
}

function chart(id, title, series, yLabel) {
  const box = $(id);
  const opts = {
    width: Math.max(300, box.clientWidth), height: 220,
    scales: { x: { time: true } },
    axes: [{ label: "time" }, { label: yLabel }],
    series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2, spanGaps: true }))],
  };
  return new uPlot(opts, [[], ...series.map(() => [])], box);
}

function drawCharts(s, prev) {
  const c = state.charts;
  if (!c.throughput && window.uPlot) {
    c.throughput = chart("chart-throughput", "throughput",
      [["completed/s", "#2e7d32"], ["dead-lettered/s", "#c62828"], ["retried/s", "#ef6c00"]], "jobs / s");
    c.wait = chart("chart-wait", "wait", [["mean wait", "#1565c0"], ["max wait", "#6a1b9a"]], "seconds");
  }
  const d = state.series;
  d.t.push(s.time);
  d.done.push(rate(s, prev, "completed"));
  d.failed.push(rate(s, prev, "failed"));
  d.retried.push(rate(s, prev, "retried"));
  d.mean.push(s.wait.mean_s);
  d.max.push(s.wait.max_s);
  for (const name of Object.keys(d)) if (d[name].length > MAX_POINTS) d[name].shift();
  if (c.throughput) {
    c.throughput.setData([d.t, d.done, d.failed, d.retried]);
    c.wait.setData([d.t, d.mean, d.max]);
  }
}

function drawWorkers(s) {
  const alive = s.workers.filter((w) => w.alive).length;
  $("workers-alive").textContent = `(${alive} alive of ${s.workers.length})`;
  fill($("workers"), s.workers.map((w) => el("tr", { class: w.alive ? "" : "dead-row" },
    el("td", {}, el("code", {}, w.id)), el("td", {}, w.mode), el("td", {}, w.alive ? "yes" : "no"),
    el("td", {}, ...(w.running.length ? w.running.map((id) => jobLink(id)) : ["idle"])))), "no workers");
}

function jobLink(id) {
  return el("a", { href: "#job", class: "job-link", onclick: (ev) => { ev.preventDefault(); inspect(id); } }, id.slice(0, 12) + " ");
}

function cancelButton(id) {
  return el("button", { type: "button", class: "cancel danger", "data-id": id, onclick: () => cancel(id) }, "Cancel");
}

function drawRunning(s) {
  $("running-count").textContent = `(${s.counts.processing ?? s.running.length})`;
  fill($("running"), s.running.map((j) => el("tr", {},
    el("td", {}, jobLink(j.task_id)), el("td", {}, j.task), el("td", {}, `${j.attempts}`),
    el("td", {}, el("code", {}, j.worker || "–")), el("td", {}, cancelButton(j.task_id)))), "none running");
}

function drawDead(s) {
  const dead = s.dead_letters;
  $("dead-total").textContent = `(${dead.total})`;
  fill($("dead"), dead.jobs.map((j) => el("tr", { "data-id": j.task_id },
    el("td", {}, jobLink(j.task_id)), el("td", {}, j.task), el("td", {}, String(j.attempts)),
    el("td", { class: "error-text" }, j.last_error || ""),
    el("td", {},
      el("button", { type: "button", class: "inspect", onclick: () => inspect(j.task_id) }, "Inspect"), " ",
      el("button", { type: "button", class: "requeue", "data-id": j.task_id, onclick: () => requeue(j.task_id) }, "Requeue")))),
  "the dead-letter queue is empty");
}

function narrate(s, prev) {
  if (!prev) return log(`watching queue ${s.queue}: ${Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(", ")}`);
  const changes = [];
  for (const [name, value] of Object.entries(s.totals)) {
    const delta = value - (prev.totals[name] || 0);
    if (delta > 0) changes.push(`+${delta} ${name}`);
  }
  if (changes.length) log(changes.join(", "));
  const before = new Set(prev.workers.filter((w) => w.alive).map((w) => w.id));
  const now = new Set(s.workers.filter((w) => w.alive).map((w) => w.id));
  for (const id of before) if (!now.has(id)) log(`worker ${id} stopped heartbeating`);
  for (const id of now) if (!before.has(id)) log(`worker ${id} joined`);
}

function log(text) {
  const list = $("log");
  list.prepend(el("li", {}, `${new Date().toLocaleTimeString()} ${text}`));
  while (list.children.length > 40) list.lastChild.remove();
}

// --- one job: status and attempt timeline --------------------------------------------------
async function inspect(id, quiet) {
  state.inspected = id;
  let job;
  try {
    job = await api(`jobs/${encodeURIComponent(id)}`, {}, quiet);
  } catch (err) {
    if (!quiet) state.inspected = null;
    return;
  }
  $("job").hidden = false;
  $("job-id").textContent = job.task_id;
  $("job-status").textContent = job.status;
  $("job-status").className = "status status-" + job.status;
  $("job-summary").textContent = `${job.task}, priority ${job.priority}, attempt ${job.attempts}, ${job.retries_left} left`;
  $("job-cancel").hidden = !CANCELLABLE.has(job.status);
  $("job-cancel").dataset.id = job.task_id;
  const start = job.submitted_at;
  const end = Math.max(start + 0.001, ...job.attempt_log.map((a) => a.ended_at || (state.last ? state.last.time : a.started_at || start)));
  const bar = (a) => {
    const from = ((a.started_at || start) - start) / (end - start) * 100;
    const to = ((a.ended_at || end) - start) / (end - start) * 100;
    return el("div", { class: "attempt outcome-" + a.outcome, title: `attempt ${a.number}: ${a.outcome}${a.error ? " — " + a.error : ""}`,
      style: `left:${from}%;width:${Math.max(0.5, to - from)}%` }, String(a.number));
  };
  $("job-timeline").replaceChildren(...job.attempt_log.map(bar));
  fill($("job-attempts"), job.attempt_log.map((a) => el("tr", {},
    el("td", {}, String(a.number)), el("td", {}, el("code", {}, a.worker || "–")), el("td", {}, clock(a.started_at)),
    el("td", {}, a.started_at && a.ended_at ? fmt(a.ended_at - a.started_at, 3) + " s" : "–"),
    el("td", { class: "outcome-text-" + a.outcome }, a.outcome), el("td", { class: "error-text" }, el("pre", {}, a.error || ""), traceback(job.task_id, a)))),
  "not started yet");
}

// A failed attempt's stack trace, collapsed; kept open across the redraw on every snapshot.
function traceback(id, a) {
  if (!a.traceback) return null;
  const key = `${id}:${a.number}`;
  const box = el("details", { class: "traceback", open: state.openTracebacks.has(key) },
    el("summary", {}, "traceback"), el("pre", {}, a.traceback));
  box.addEventListener("toggle", () => {
    if (box.open) state.openTracebacks.add(key);
    else state.openTracebacks.delete(key);
  });
  return box;
}

// --- actions -------------------------------------------------------------------------------
// A refused action (say 409, cancelling a job that has just finished) is shown by `api`.
async function cancel(id) {
  try {
    const body = await api(`jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
    log(`cancelled job ${id} (${body.status})`);
  } catch (err) {
    return;
  }
  inspect(id);
}

$("job-cancel").addEventListener("click", () => cancel($("job-cancel").dataset.id));

for (const [button, path] of [["pause", "pause"], ["resume", "resume"]]) {
  $(button).addEventListener("click", async () => {
    const body = await api(path, { method: "POST" }).catch(() => null);
    if (!body) return;
    $("paused").hidden = !body.paused;
    log(body.paused ? (body.was_paused ? "already paused" : "paused the queue") : (body.was_paused ? "resumed the queue" : "was not paused"));
  });
}

async function requeue(id) {
  await api(`dead-letters/${encodeURIComponent(id)}/requeue`, { method: "POST" });
  log(`requeued dead letter ${id}`);
  inspect(id);
}

$("requeue-all").addEventListener("click", async () => {
  const body = await api("dead-letters/requeue", { method: "POST" });
  log(`requeued ${body.requeued} dead letters`);
});

$("purge").addEventListener("click", async () => {
  if (!window.confirm("Delete every dead letter and its record?")) return;
  const body = await api("dead-letters", { method: "DELETE" });
  log(`purged ${body.purged} dead letters`);
});

$("submit-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  let payload;
  try {
    payload = JSON.parse($("submit-payload").value || "null");
  } catch (err) {
    return showError(`payload is not JSON: ${err.message}`);
  }
  const body = { task: $("submit-task").value, payload, priority: Number($("submit-priority").value), max_retries: Number($("submit-retries").value) };
  const answer = await api("submit", { method: "POST", body: JSON.stringify(body) });
  log(`submitted ${body.task} job ${answer.task_id}`);
  inspect(answer.task_id);
});

$("inspect-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if ($("inspect-id").value.trim()) inspect($("inspect-id").value.trim());
});

// --- jobs by status: drawn again as the feed shows the queue changing ------------------------
// Refreshed on a snapshot whose counts or totals differ from those of the last refresh, at
// most once per LIST_REFRESH_MS and one request at a time (a burst of snapshots costs one
// GET). Finished statuses show their newest jobs first: the service lists them oldest first,
// so the page asks for the last LIST_LIMIT by offset.
const LIST_LIMIT = 50;
const LIST_REFRESH_MS = 1000;
const NEWEST_FIRST = new Set(["completed", "failed", "cancelled"]);
const list = { key: null, at: 0, busy: false, again: false, timer: null };

async function refreshList(background) {
  const status = $("list-status").value;
  if (!status) return;
  if (list.busy) {
    list.again = true;
    return;
  }
  list.busy = true;
  list.at = Date.now();
  list.key = changeKey(state.last);
  try {
    const total = state.last ? state.last.counts[status] || 0 : 0;
    const offset = NEWEST_FIRST.has(status) ? Math.max(0, total - LIST_LIMIT) : 0;
    const body = await api(`jobs?status=${encodeURIComponent(status)}&limit=${LIST_LIMIT}&offset=${offset}`, {}, background);
    if (status === $("list-status").value) drawList(status, body, offset);
  } catch (err) {
    // shown by `api`; the next change tries again
  } finally {
    list.busy = false;
    if (list.again) {
      list.again = false;
      scheduleList();
    }
  }
}

function scheduleList() {
  if (list.timer) return;
  const wait = Math.max(0, list.at + LIST_REFRESH_MS - Date.now());
  list.timer = setTimeout(() => {
    list.timer = null;
    refreshList(true);
  }, wait);
}

const changeKey = (s) => (s ? JSON.stringify([s.counts, s.totals]) : null);

function onListSnapshot(s) {
  if (changeKey(s) !== list.key) scheduleList();
}

function drawList(status, body, offset) {
  const jobs = NEWEST_FIRST.has(status) ? body.jobs.slice().reverse() : body.jobs;
  const order = NEWEST_FIRST.has(status) ? "newest first" : "in the order the queue keeps them";
  $("list-total").textContent = `(${jobs.length} of ${body.total}, ${order})`;
  fill($("list"), jobs.map((j) => el("tr", { "data-id": j.task_id }, el("td", {}, jobLink(j.task_id)), el("td", {}, j.task),
    el("td", { class: "list-status" }, j.status), el("td", {}, String(j.attempts)), el("td", { class: "error-text" }, j.last_error || ""),
    el("td", {}, CANCELLABLE.has(j.status) ? cancelButton(j.task_id) : ""))),
  `no ${status} jobs`);
}

$("list-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  refreshList(false);
});
$("list-status").addEventListener("change", () => refreshList(false));

for (const button of document.querySelectorAll("[data-scenario]")) {
  button.addEventListener("click", async () => {
    const body = await api(`scenarios/${button.dataset.scenario}`, { method: "POST" });
    log(`scenario ${body.name}: submitted ${body.submitted} jobs`);
  });
}

follow();
