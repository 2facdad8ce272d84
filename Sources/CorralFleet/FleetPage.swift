import CorralAgent
import HTTPTypes
import Hummingbird

/// The fleet page at `/` of `corral server`: one self-contained document
/// (no external assets, works offline) over the `/v1` API. Runs (filters,
/// search, a progress bar by state), a form for a new run (shell or python
/// script, or argv with shell-like quoting; a target with its resolved
/// host count), a run's view (per-host table paged, filtered and sorted by
/// the server, counters from the same snapshot, a live output pane per host
/// with ANSI colours, a merged view labelled by host, cancel, re-run), and
/// the hosts. Like the agent's page: every text from the API goes through
/// `textContent`, never `innerHTML`; no inline `style` or event-handler
/// attributes; the Content-Security-Policy admits exactly the one
/// `<script>` and the one `<style>` element by hash (widths and 256/RGB
/// colours are set through the CSSOM, which the policy does not govern).
/// The pieces it shares with the agent's page come from `PageParts`.
enum FleetPage {
    /// The policy sent on every response of the server.
    static let policy = ContentSecurityPolicy.policy(for: html)

    /// `/` and the page's own read routes.
    static func add(to router: Router<BasicRequestContext>, queries: FleetQueries) {
        router.get("/") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
        }
        queries.add(to: router)
    }

    static let html = #"""
\#(PageParts.head(title: "Corral fleet"))
<style>
\#(PageParts.baseStyle)
  header { display:flex; flex-wrap:wrap; align-items:center; gap:6px 18px; padding:10px 20px; background:#1d2330; color:#fff; }
  header h1 { font-size:17px; margin:0; font-weight:600; }
  header nav { display:flex; gap:4px; }
  header nav a { color:#c9d1e0; text-decoration:none; padding:4px 10px; border-radius:6px; }
  header nav a.current { background:#34405a; color:#fff; }
  header .conn { margin-left:auto; font-size:12px; color:#c9d1e0; }
  #banner { padding:10px 20px; background:#fbe7e6; color:#7a1d18; border-bottom:2px solid var(--bad); font-weight:600; }
  #login { max-width:520px; margin:40px auto; }
  main { padding:16px 20px; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:14px 16px; min-width:0; margin-bottom:16px; }
  h2 { font-size:14px; margin:0 0 10px; color:var(--muted); text-transform:uppercase; letter-spacing:.6px; }
  input, select, button, textarea { font:inherit; padding:6px 8px; border:1px solid #c9ced6; border-radius:6px; background:#fff; color:var(--ink); min-width:0; }
  textarea { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; width:100%; min-height:130px; resize:vertical; }
  button { background:var(--accent); color:#fff; border:1px solid var(--accent); cursor:pointer; padding:6px 10px; }
  button.secondary { background:#fff; color:var(--ink); border-color:#c9ced6; }
  button.danger { background:var(--bad); border-color:var(--bad); }
  button.link { background:none; border:none; color:inherit; padding:0; font-weight:600; cursor:pointer; }
\#(PageParts.controlStyle)
  .tablewrap { max-height: calc(100vh - 260px); overflow-y:auto; overflow-x:hidden; border:1px solid var(--line); border-radius:6px; }
  table { border-collapse:collapse; width:100%; font-size:13px; table-layout:fixed; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
  th { position:sticky; top:0; background:#fafbfc; color:var(--muted); font-weight:600; z-index:1; }
  th[aria-sort=ascending] button::after { content:" \25B2"; }
  td.mono { font-family: ui-monospace, Menlo, monospace; }
  tr.row { cursor:pointer; }
  tr.row:hover { background:#f2f5fb; }
  tr.row.selected { background:#e8effd; box-shadow: inset 4px 0 0 var(--accent); }
  col.c-id { width:56px; } col.c-name { width:13%; } col.c-target { width:13%; } col.c-created { width:92px; }
  col.c-progress { width:25%; } col.c-duration { width:92px; }
  col.t-host { width:22%; } col.t-state { width:130px; } col.t-exit { width:82px; } col.t-duration { width:92px; }
  col.h-name { width:18%; } col.h-state { width:90px; } col.h-version { width:14%; } col.h-seen { width:150px; } col.h-running { width:80px; }
  .badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; background:#eef0f3; color:var(--muted); }
  .badge.running, .badge.up { background:#e5edff; color:var(--run); }
  .badge.ok, .badge.done { background:#e3f4ea; color:var(--ok); }
  .badge.fail, .badge.down, .badge.stopped { background:#fbe7e6; color:var(--bad); }
  .badge.warn, .badge.suspect, .badge.cancelled, .badge.cancelling { background:#fcf1dd; color:var(--warn); }
  .bar { display:flex; height:10px; border-radius:5px; overflow:hidden; background:#eef0f3; margin:2px 0; }
  .bar span { display:block; height:100%; }
  .s-ok { background:#2f9e5b; } .s-fail { background:#c8382f; } .s-timed_out { background:#e07b1a; } .s-lost { background:#7a1d6b; }
  .s-undelivered { background:#8b95a8; } .s-cancelled { background:#c9a227; } .s-skipped { background:#b8bfcc; }
  .s-running { background:#2f6fed; } .s-queued { background:#9ab8f5; } .s-pending { background:#d7e2f8; }
  .progress-text { font-size:12px; color:var(--muted); }
  .counters { display:flex; flex-wrap:wrap; gap:6px 14px; margin:8px 0; font-size:13px; }
  .counters .key { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; }
  .counters .total { font-weight:700; }
  .grid { display:grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap:16px; }
  @media (max-width: 1279px) { .grid { grid-template-columns: minmax(0, 1fr); } }
  dl { display:grid; grid-template-columns: 110px minmax(0, 1fr); gap:4px 12px; margin:0 0 12px; font-size:13px; }
  dt { color:var(--muted); } dd { margin:0; overflow-wrap:anywhere; }
  pre.script { font-family: ui-monospace, Menlo, monospace; white-space:pre-wrap; max-height:120px; overflow:auto; margin:0; background:#f4f6f9; padding:6px 8px; border-radius:4px; }
  .runhead { display:flex; flex-wrap:wrap; align-items:center; gap:10px; margin-bottom:10px; }
  .runhead h3 { margin:0; font-size:16px; overflow-wrap:anywhere; }
  .runhead .actions { margin-left:auto; display:flex; flex-wrap:wrap; gap:6px; }
  .outhead { display:flex; flex-wrap:wrap; align-items:center; gap:8px; margin-bottom:6px; }
  .outhead h2 { margin:0; margin-right:auto; }
  .notice { background:#fcf1dd; color:#5c3b06; border:1px solid #ecd3a4; border-radius:6px; padding:6px 10px; margin-bottom:6px; }
  pre.term { background:var(--term-bg); color:var(--term-fg); padding:10px 12px; border-radius:6px; min-height:200px;
             max-height: calc(100vh - 300px); overflow:auto; white-space:pre-wrap; overflow-wrap:anywhere; font-size:12.5px; margin:0; }
  pre.term .host { color:#8fb3ff; font-weight:600; }
\#(PageParts.terminalStyle("pre.term"))
  .empty { color:var(--muted); padding:24px 0; text-align:center; }
  .error { color:var(--bad); margin:6px 0; min-height:1em; }
  .hint { color:var(--muted); font-size:12.5px; }
  form.run { display:grid; grid-template-columns: 150px minmax(0, 1fr); gap:10px 12px; align-items:start; }
  form.run label.k { color:var(--muted); padding-top:6px; }
  form.run .row { display:flex; flex-wrap:wrap; gap:8px; align-items:center; }
  #hostpick { max-height:180px; overflow:auto; border:1px solid var(--line); border-radius:6px; padding:6px 8px; columns: 3 180px; }
  #hostpick label { display:block; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
  #resolved { font-weight:600; }
  .chip { display:inline-block; padding:0 6px; margin:0 4px 2px 0; border-radius:4px; background:#eef0f3; font-size:12px; }
  .sr { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
</style>
</head>
<body>
<header><h1>Corral fleet</h1>
  <nav aria-label="views"><a href="#runs" id="nav-runs">Runs</a><a href="#new" id="nav-new">New run</a><a href="#hosts" id="nav-hosts">Hosts</a></nav>
  <span class="conn" id="conn" aria-live="polite"></span></header>
<div id="banner" role="alert" hidden></div>
\#(PageParts.tokenPrompt("server"))
<main id="main">
  <section id="runs-view" aria-labelledby="runs-title" hidden>
    <h2 id="runs-title">Runs</h2>
    <div class="toolbar">
      <label>Show <select id="runs-filter">
        <option value="">all</option><option value="active">not finished</option><option value="finished">finished</option>
        <option value="errors">with errors</option><option value="done">done</option><option value="stopped">stopped (max errors)</option>
        <option value="cancelled">cancelled</option>
      </select></label>
      <input id="runs-search" type="search" placeholder="search name or command" aria-label="search runs by name or command" autocomplete="off">
      <span id="runs-shown" aria-live="polite"></span>
    </div>
    <div class="tablewrap">
      <table>
        <colgroup><col class="c-id"><col class="c-name"><col class="c-cmd"><col class="c-target"><col class="c-created"><col class="c-progress"><col class="c-duration"></colgroup>
        <thead><tr><th scope="col">Run</th><th scope="col">Name</th><th scope="col">Script</th><th scope="col">Target</th>
          <th scope="col">Created</th><th scope="col">Progress</th><th scope="col">Duration</th></tr></thead>
        <tbody id="runs"></tbody>
      </table>
      <div class="empty" id="noruns">No runs yet.</div>
    </div>
    <div class="toolbar"><button class="secondary" id="runs-more" hidden>Show older runs</button></div>
  </section>

  <section id="new-view" aria-labelledby="new-title" hidden>
    <h2 id="new-title">New run</h2>
    <form class="run" id="run-form">
      <label class="k" for="run-kind">Job</label>
      <div class="row"><select id="run-kind" aria-label="kind of job">
          <option value="shell">shell script (sh -c)</option><option value="python">python script (python3 -c)</option>
          <option value="argv">argv (words, shell-like quoting)</option></select>
        <span class="hint" id="kind-hint"></span></div>
      <label class="k" for="run-script">Script</label>
      <textarea id="run-script" placeholder="echo hello from $(hostname)" spellcheck="false" required></textarea>
      <label class="k" for="target-kind">Target</label>
      <div>
        <div class="row"><select id="target-kind" aria-label="target kind">
            <option value="all">all hosts</option><option value="labels">hosts with labels</option><option value="hosts">picked hosts</option></select>
          <input id="target-labels" placeholder="role=web dc=paris" aria-label="labels, key=value separated by spaces" hidden>
          <input id="host-filter" type="search" placeholder="filter hosts" aria-label="filter the host list" hidden></div>
        <div id="hostpick" role="group" aria-label="hosts" hidden></div>
        <p class="hint"><span id="resolved" aria-live="polite"></span> The target is resolved when the run is created and frozen: hosts that join later are not in it.</p>
      </div>
      <label class="k" for="run-name">Name</label>
      <input id="run-name" placeholder="optional" autocomplete="off">
      <label class="k" for="run-timeout">Deadline</label>
      <div class="row"><input id="run-timeout" value="60s" aria-label="deadline (timeout per host)"><span class="hint">per host, e.g. 30s, 5m, 1h; empty: none</span></div>
      <label class="k" for="run-concurrency">Max concurrency</label>
      <div class="row"><input id="run-concurrency" placeholder="all" aria-label="max concurrency"><span class="hint">hosts at once: N or N%</span></div>
      <label class="k" for="run-errors">Max errors</label>
      <div class="row"><input id="run-errors" placeholder="no limit" aria-label="max errors"><span class="hint">past it the run stops and skips the hosts not started: N or N%</span></div>
      <span></span>
      <div class="row"><button type="submit" id="run-submit">Start run</button><span class="error" id="run-form-error" role="status"></span></div>
    </form>
  </section>

  <div id="run-view" hidden>
    <section aria-label="run">
      <div class="runhead"><h3 id="run-title"></h3><span class="badge" id="run-state"></span>
        <span class="actions">
          <button class="secondary" id="rerun-all">Re-run all</button>
          <button class="secondary" id="rerun-failed">Re-run failed</button>
          <button class="secondary" id="rerun-lost">Re-run lost or undelivered</button>
          <button class="danger" id="cancel-run">Cancel run</button></span></div>
      <div class="error" id="run-error" role="status"></div>
      <dl>
        <dt>Script</dt><dd><pre class="script" id="run-script-text"></pre></dd>
        <dt>Target</dt><dd id="run-target"></dd>
        <dt>Created</dt><dd id="run-created"></dd>
        <dt>Duration</dt><dd id="run-duration"></dd>
        <dt>Limits</dt><dd id="run-limits"></dd>
      </dl>
      <div class="bar" id="run-bar" aria-hidden="true"></div>
      <div class="counters" id="run-counters" aria-live="polite"></div>
    </section>
    <div class="grid">
      <section aria-labelledby="tasks-title">
        <h2 id="tasks-title">Hosts of this run</h2>
        <div class="toolbar">
          <label>Show <select id="tasks-filter">
            <option value="">all</option><option value="errors">failed (errors)</option><option value="active">not finished</option>
            <option value="ok">exited ok</option><option value="running">running</option><option value="queued">queued</option>
            <option value="pending">pending</option><option value="exited">exited</option><option value="signaled">signaled</option>
            <option value="timed_out">timed out</option><option value="failed">failed to start</option><option value="lost">lost</option>
            <option value="undelivered">undelivered</option><option value="cancelled">cancelled</option><option value="skipped">skipped</option>
          </select></label>
          <input id="tasks-search" type="search" placeholder="search host or note" aria-label="search hosts or notes" autocomplete="off">
          <span id="tasks-shown" aria-live="polite"></span>
        </div>
        <div class="tablewrap">
          <table aria-describedby="tasks-help">
            <colgroup><col class="t-host"><col class="t-state"><col class="t-exit"><col class="t-duration"><col class="t-note"></colgroup>
            <thead><tr><th scope="col" data-sort="host"><button class="link" data-sort="host">Host</button></th>
              <th scope="col" data-sort="state"><button class="link" data-sort="state">State</button></th>
              <th scope="col" data-sort="exit"><button class="link" data-sort="exit">Exit</button></th>
              <th scope="col" data-sort="duration"><button class="link" data-sort="duration">Duration</button></th>
              <th scope="col">Note</th></tr></thead>
            <tbody id="tasks"></tbody>
          </table>
          <div class="empty" id="notasks" hidden>No hosts match.</div>
        </div>
        <p class="sr" id="tasks-help">Arrow keys move between hosts; Enter shows a host's output. Column buttons sort.</p>
        <div class="toolbar"><button class="secondary" id="tasks-prev" hidden>Previous page</button>
          <button class="secondary" id="tasks-next" hidden>Next page</button></div>
      </section>
      <section aria-labelledby="out-title">
        <div class="outhead"><h2 id="out-title">Output</h2>
          <label><input type="checkbox" id="follow" checked> follow</label>
          <button class="secondary" id="merged">Merged view</button>
          <button class="secondary" id="rerun-host" hidden>Re-run this host</button>
          <button class="danger" id="cancel-host" hidden>Cancel this host</button></div>
        <div class="notice" id="out-notice" role="status" hidden></div>
        <pre class="term" id="output" tabindex="0" aria-label="output"></pre>
      </section>
    </div>
  </div>

  <section id="hosts-view" aria-labelledby="hosts-title" hidden>
    <h2 id="hosts-title">Hosts</h2>
    <div class="toolbar"><input id="hosts-search" type="search" placeholder="search name or label" aria-label="search hosts" autocomplete="off">
      <span id="hosts-shown" aria-live="polite"></span></div>
    <div class="tablewrap">
      <table>
        <colgroup><col class="h-name"><col class="h-state"><col class="h-labels"><col class="h-version"><col class="h-seen"><col class="h-running"></colgroup>
        <thead><tr><th scope="col">Host</th><th scope="col">State</th><th scope="col">Labels</th><th scope="col">Version</th>
          <th scope="col">Last seen</th><th scope="col">Running</th></tr></thead>
        <tbody id="hosts"></tbody>
      </table>
      <div class="empty" id="nohosts">No agent has joined yet: start one with corral agent --server-db URL --name HOST.</div>
    </div>
  </section>
</main>
<script>
\#(PageParts.scriptStart)

// --- Text helpers ---------------------------------------------------------------
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}
\#(PageParts.textHelpers)
function when(text) {
  if (!text) return "";
  const at = new Date(text), now = new Date();
  return at.toDateString() === now.toDateString() ? at.toLocaleTimeString() : at.toLocaleString();
}
function ago(text) {
  if (!text) return "";
  const s = Math.max(0, (Date.now() - new Date(text)) / 1000);
  return s < 90 ? Math.round(s) + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : s < 172800 ? Math.round(s / 3600) + " h ago" : Math.round(s / 86400) + " days ago";
}
function firstLine(text) {
  const line = (text || "").split("\n").find((l) => l.trim()) || "";
  return line.trim();
}
function commandLine(run) {
  const c = run.command || "";
  if (c.startsWith("python3 -c ")) return "python: " + firstLine(c.slice(11));
  return firstLine(c);
}
function targetText(target) {
  if (!target) return "";
  if (target.all) return "all hosts";
  if (target.labels) return "labels " + Object.entries(target.labels).map(([k, v]) => k + "=" + v).join(" ");
  if (target.hosts) return target.hosts.length <= 3 ? target.hosts.join(", ") : target.hosts.slice(0, 3).join(", ") + " +" + (target.hosts.length - 3);
  return JSON.stringify(target);
}

// --- API, token, health -------------------------------------------------------------
class Unauthorized extends Error {}
async function api(path, options) {
  let response;
  try { response = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {})); }
  catch (error) { unreachable(error); throw error; }
  reachable();
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) { showLogin(); throw new Unauthorized("a token is required"); }
  if (response.status === 503 && body.error) { $("banner").hidden = false; $("banner").textContent = body.error.message; }
  else if (!unreachableSince && response.ok && !$("banner").hidden) $("banner").hidden = true;
  if (!response.ok) {
    const e = new Error((body.error && body.error.message) || (response.status + " " + response.statusText));
    e.status = response.status; e.field = body.error && body.error.field;
    throw e;
  }
  return body;
}
\#(PageParts.showLogin("server"))
let unreachableSince = null;
function unreachable(error) {
  if (!unreachableSince) unreachableSince = new Date();
  $("banner").hidden = false;
  $("banner").textContent = "The server is unreachable since " + unreachableSince.toLocaleTimeString() + " (" + error.message + "); retrying.";
}
function reachable() {
  if (unreachableSince) { unreachableSince = null; $("banner").hidden = true; }
}
function updated() { $("conn").textContent = "updated " + new Date().toLocaleTimeString(); }
function failed(what, error) { if (!(error instanceof Unauthorized)) $("conn").textContent = what + " not updated: " + error.message; }

// --- States --------------------------------------------------------------------------
// Each task state's place in the progress bar and the counters: a class,
// a label, and a mark (colour is never the only signal).
const KINDS = [
  ["ok", "exited ok", "\u2713"], ["fail", "failed", "\u2717"], ["timed_out", "timed out", "\u25F7"], ["lost", "lost", "?"],
  ["undelivered", "undelivered", "\u2205"], ["cancelled", "cancelled", "\u2298"], ["skipped", "skipped", "\u21B7"],
  ["running", "running", "\u25B6"], ["queued", "queued", "\u2026"], ["pending", "pending", "\u00B7"]];
function kindCounts(counts, failedExits) {
  const c = Object.assign({}, counts || {});
  const exited = c.exited || 0, bad = failedExits || 0;
  return { ok: exited - bad, fail: bad + (c.signaled || 0) + (c.failed || 0), timed_out: c.timed_out || 0, lost: c.lost || 0,
           undelivered: c.undelivered || 0, cancelled: c.cancelled || 0, skipped: c.skipped || 0,
           running: c.running || 0, queued: c.queued || 0, pending: c.pending || 0 };
}
function taskKind(task) {
  if (task.state === "exited") return task.exit_code === 0 ? "ok" : "fail";
  if (task.state === "signaled" || task.state === "failed") return "fail";
  return task.state;
}
function taskTone(task) {
  const k = taskKind(task);
  return k === "ok" ? "ok" : k === "running" ? "running" : ["fail", "timed_out", "lost"].includes(k) ? "fail" : ["cancelled", "undelivered", "skipped"].includes(k) ? "warn" : "";
}
function taskBadge(node, task) {
  const kind = KINDS.find((k) => k[0] === taskKind(task));
  const label = task.state === "exited" ? (task.exit_code === 0 ? "exited ok" : "exited " + task.exit_code) :
    task.state === "failed" ? "failed to start" : task.state.replace(/_/g, " ");
  setText(node, (kind ? kind[2] + " " : "") + label);
  node.className = "badge " + taskTone(task);
}
function drawBar(bar, kinds, total) {
  const parts = [];
  for (const [key, label] of KINDS) {
    if (!kinds[key]) continue;
    const part = el("span", "s-" + key);
    part.style.width = (100 * kinds[key] / Math.max(1, total)) + "%";
    part.title = kinds[key] + " " + label;
    parts.push(part);
  }
  bar.replaceChildren(...parts);
}
function progressText(kinds, total) {
  const finished = total - kinds.running - kinds.queued - kinds.pending;
  const words = [finished + "/" + total + " finished"];
  for (const [key, label] of KINDS) if (kinds[key] && key !== "ok") words.push(kinds[key] + " " + label);
  return words.join(" \u00B7 ");
}
function taskNote(task) {
  if (task.note) return task.note;
  switch (task.state) {
    case "pending": return "waiting for the window (max concurrency)";
    case "queued": return "queued: its agent takes it at its next poll";
    case "running": return task.cancel_requested ? "cancel requested: the agent stops it at its next heartbeat" : "running";
    case "exited": return task.exit_code === 0 ? "exited with code 0" : "failed: exited with code " + task.exit_code;
    case "signaled": return "killed by SIG" + task.signal;
    case "timed_out": return "the deadline passed; the job's group was stopped";
    default: return "";
  }
}

// --- Views ----------------------------------------------------------------------------
let view = null;
function route() {
  const hash = location.hash.slice(1) || "runs";
  const parts = hash.split("/").map(decodeURIComponent);
  const name = parts[0] === "run" ? "run" : ["new", "hosts"].includes(parts[0]) ? parts[0] : "runs";
  $("runs-view").hidden = name !== "runs"; $("new-view").hidden = name !== "new";
  $("run-view").hidden = name !== "run"; $("hosts-view").hidden = name !== "hosts";
  for (const n of ["runs", "new", "hosts"]) $("nav-" + n).classList.toggle("current", n === name || (n === "runs" && name === "run"));
  view = name;
  if (name === "runs") refreshRuns();
  else if (name === "new") openForm();
  else if (name === "hosts") refreshHosts();
  else openRun(Number(parts[1]), parts[2] || null);
}
window.addEventListener("hashchange", route);

\#(PageParts.keyboardRows)
function tabStop(body, preferred) {
  const rows = Array.from(body.children);
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("tr.row");
  const active = (focused && focused.parentElement === body && focused) || preferred || rows[0];
  for (const tr of rows) tr.tabIndex = tr === active ? 0 : -1;
}
// Keeps one row per key, in the order given, reusing the rows shown.
function syncRows(body, map, items, keyOf, make, update) {
  const keep = new Set(items.map(keyOf));
  for (const [key, row] of map) if (!keep.has(key)) { row.tr.remove(); map.delete(key); }
  items.forEach((item, index) => {
    const key = keyOf(item);
    let row = map.get(key);
    if (!row) { row = make(item); map.set(key, row); }
    update(row, item);
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
  });
}

// --- Runs list ------------------------------------------------------------------------
const runRows = new Map();
let runsLimit = 50, runsGeneration = 0, runsBusy = false;
function runsQuery() {
  const p = ["limit=" + runsLimit];
  if ($("runs-filter").value) p.push("state=" + encodeURIComponent($("runs-filter").value));
  const q = $("runs-search").value.trim();
  if (q) p.push("q=" + encodeURIComponent(q));
  return "/v1/runs?" + p.join("&");
}
async function refreshRuns() {
  if (runsBusy) return;
  runsBusy = true;
  const mine = runsGeneration;
  try {
    const page = await api(runsQuery());
    if (mine !== runsGeneration) return;
    syncRows($("runs"), runRows, page.runs, (r) => String(r.id), makeRunRow, updateRunRow);
    tabStop($("runs"));
    $("noruns").hidden = page.runs.length > 0;
    $("noruns").textContent = $("runs-filter").value || $("runs-search").value.trim() ? "No runs match." : "No runs yet: start one with New run.";
    $("runs-more").hidden = !page.next || runsLimit >= 500;
    $("runs-shown").textContent = page.runs.length + " shown";
    updated();
  } catch (error) { failed("runs", error); }
  finally { runsBusy = false; }
}
function makeRunRow(run) {
  const tr = el("tr", "row"); tr.dataset.id = run.id;
  const cells = [0, 1, 2, 3, 4, 5, 6].map(() => tr.appendChild(el("td")));
  cells[2].className = "mono";
  const bar = el("div", "bar"), text = el("div", "progress-text");
  cells[5].append(bar, text);
  tr.addEventListener("click", () => { location.hash = "run/" + run.id; });
  return { tr, cells, bar, text };
}
function updateRunRow(row, run) {
  const kinds = kindCounts(run.counts, run.failed_exits);
  setText(row.cells[0], String(run.id));
  const badge = row.cells[1].querySelector(".badge") || row.cells[1].appendChild(el("span", "badge"));
  setText(badge, run.state); badge.className = "badge " + run.state;
  if (!row.cells[1].querySelector(".name")) { row.cells[1].prepend(el("div", "name")); }
  setText(row.cells[1].querySelector(".name"), run.name); row.cells[1].title = run.name;
  setText(row.cells[2], commandLine(run)); row.cells[2].title = run.command || "";
  setText(row.cells[3], targetText(run.target)); row.cells[3].title = JSON.stringify(run.target);
  setText(row.cells[4], when(run.created_at)); row.cells[4].title = run.created_at || "";
  drawBar(row.bar, kinds, run.tasks);
  setText(row.text, progressText(kinds, run.tasks));
  setText(row.cells[6], span(run.duration_s) + (run.finished_at ? "" : "\u2026"));
}
function resetRuns() { runsGeneration++; runsBusy = false; runsLimit = 50; refreshRuns(); }
$("runs-filter").onchange = resetRuns;
let runsTimer = null;
$("runs-search").oninput = () => { clearTimeout(runsTimer); runsTimer = setTimeout(resetRuns, 250); };
$("runs-more").onclick = () => { runsLimit = Math.min(500, runsLimit + 50); refreshRuns(); };
keyboardRows($("runs"), (tr) => { location.hash = "run/" + tr.dataset.id; });

// --- Hosts ----------------------------------------------------------------------------
const hostRows = new Map();
let agents = [];
async function loadAgents() { agents = (await api("/v1/agents")).agents; return agents; }
async function refreshHosts() {
  try {
    await loadAgents();
    const q = $("hosts-search").value.trim().toLowerCase();
    const shown = agents.filter((a) => !q || a.name.toLowerCase().includes(q) ||
      Object.entries(a.labels || {}).some(([k, v]) => (k + "=" + v).toLowerCase().includes(q)));
    syncRows($("hosts"), hostRows, shown, (a) => a.name, makeHostRow, updateHostRow);
    $("nohosts").hidden = agents.length > 0;
    const up = agents.filter((a) => a.state === "up").length;
    $("hosts-shown").textContent = shown.length + " shown \u00B7 " + up + " up \u00B7 " + (agents.length - up) + " not up";
    updated();
  } catch (error) { failed("hosts", error); }
}
function makeHostRow() {
  const tr = el("tr", "host");
  const cells = [0, 1, 2, 3, 4, 5].map(() => tr.appendChild(el("td")));
  cells[1].appendChild(el("span", "badge"));
  return { tr, cells };
}
function updateHostRow(row, agent) {
  setText(row.cells[0], agent.name);
  const badge = row.cells[1].firstChild;
  setText(badge, (agent.state === "up" ? "\u25CF " : agent.state === "down" ? "\u2717 " : "? ") + agent.state);
  badge.className = "badge " + agent.state;
  const labels = Object.entries(agent.labels || {}).map(([k, v]) => el("span", "chip", k + "=" + v));
  if (row.cells[2].textContent !== labels.map((l) => l.textContent).join("")) row.cells[2].replaceChildren(...labels);
  setText(row.cells[3], agent.version || "");
  setText(row.cells[4], ago(agent.seen_at)); row.cells[4].title = agent.seen_at || "";
  setText(row.cells[5], String(agent.running));
}
$("hosts-search").oninput = refreshHosts;

// --- New run ----------------------------------------------------------------------------
\#(PageParts.splitWords)
function parseLabels(text) {
  const labels = {};
  for (const pair of text.trim().split(/\s+/).filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at < 1) throw new Error("labels: write key=value, separated by spaces (\"" + pair + "\")");
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  if (!Object.keys(labels).length) throw new Error("labels: give at least one key=value");
  return labels;
}
const picked = new Set();
function targetFromForm() {
  const kind = $("target-kind").value;
  if (kind === "all") return { all: true };
  if (kind === "labels") return { labels: parseLabels($("target-labels").value) };
  if (!picked.size) throw new Error("hosts: pick at least one host");
  return { hosts: Array.from(picked).sort() };
}
// What the target resolves to now, from the agents the server lists (as
// the server resolves it: every registered agent, up or not).
function resolveTarget() {
  let matched = [];
  try {
    const target = targetFromForm();
    if (target.all) matched = agents;
    else if (target.labels) matched = agents.filter((a) => Object.entries(target.labels).every(([k, v]) => (a.labels || {})[k] === v));
    else matched = agents.filter((a) => picked.has(a.name));
  } catch (error) {
    $("resolved").textContent = error.message + ".";
    $("resolved").dataset.count = "0";
    return;
  }
  const down = matched.filter((a) => a.state === "down").length;
  const suspect = matched.filter((a) => a.state === "suspect").length;
  $("resolved").dataset.count = String(matched.length);
  $("resolved").textContent = "Resolves to " + matched.length + " host" + (matched.length === 1 ? "" : "s") +
    (down ? " (" + down + " down: their tasks will end undelivered)" : "") +
    (suspect ? " (" + suspect + " suspect: silent for a while, their tasks wait for them up to the TTL)" : "") +
    (matched.length && matched.length <= 8 ? ": " + matched.map((a) => a.name).join(", ") : "") + ".";
}
function drawHostPick() {
  const q = $("host-filter").value.trim().toLowerCase();
  const items = agents.filter((a) => !q || a.name.toLowerCase().includes(q)).slice(0, 2000).map((a) => {
    const label = el("label");
    const box = el("input"); box.type = "checkbox"; box.value = a.name; box.checked = picked.has(a.name);
    box.onchange = () => { if (box.checked) picked.add(a.name); else picked.delete(a.name); resolveTarget(); };
    label.append(box, " " + a.name + (a.state === "up" ? "" : " (" + a.state + ")"));
    return label;
  });
  $("hostpick").replaceChildren(...items);
}
function targetKindChanged() {
  const kind = $("target-kind").value;
  $("target-labels").hidden = kind !== "labels";
  $("host-filter").hidden = kind !== "hosts"; $("hostpick").hidden = kind !== "hosts";
  if (kind === "hosts") drawHostPick();
  resolveTarget();
}
const KIND_HINTS = { shell: "run by /bin/sh -c on each host", python: "run by python3 -c on each host",
                     argv: "one command: words split as a shell would ('…', \"…\", \\), no shell runs it" };
async function openForm() {
  $("kind-hint").textContent = KIND_HINTS[$("run-kind").value];
  try { await loadAgents(); } catch (error) { failed("hosts", error); }
  targetKindChanged();
}
$("run-kind").onchange = () => { $("kind-hint").textContent = KIND_HINTS[$("run-kind").value]; };
$("target-kind").onchange = targetKindChanged;
$("target-labels").oninput = resolveTarget;
$("host-filter").oninput = drawHostPick;
function bound(text, field) {
  text = text.trim();
  if (!text) return undefined;
  if (/^\d{1,3}%$/.test(text)) return text;
  if (/^\d{1,7}$/.test(text)) return Number(text);
  throw new Error(field + ": a number or a percentage like 10%");
}
$("run-form").onsubmit = async (event) => {
  event.preventDefault();
  $("run-form-error").textContent = "";
  let body;
  try {
    const script = $("run-script").value;
    if (!script.trim()) throw new Error("the script is empty");
    const kind = $("run-kind").value;
    const job = kind === "shell" ? { shell: script } : kind === "python" ? { argv: ["python3", "-c", script] } : { argv: splitWords(script) };
    if ($("run-timeout").value.trim()) job.timeout = $("run-timeout").value.trim();
    body = { target: targetFromForm(), job };
    if ($("run-name").value.trim()) body.name = $("run-name").value.trim();
    const concurrency = bound($("run-concurrency").value, "max concurrency"), budget = bound($("run-errors").value, "max errors");
    if (concurrency !== undefined) body.max_concurrency = concurrency;
    if (budget !== undefined) body.max_errors = budget;
  } catch (error) { $("run-form-error").textContent = error.message; return; }
  $("run-submit").disabled = true;
  try {
    const run = await api("/v1/runs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    location.hash = "run/" + run.id;
  } catch (error) {
    $("run-form-error").textContent = error.message + (error.field ? " (" + error.field + ")" : "");
  } finally { $("run-submit").disabled = false; }
};

// --- ANSI rendering ------------------------------------------------------------------------
\#(PageParts.ansi)

// --- Output tails ------------------------------------------------------------------------------
// One tail per host shown: its cursor (`next`), a decoder that joins a
// character split between answers, the ANSI state, and for the merged view
// the line not yet ended (lines are labelled by host as they complete).
function newTail(host) {
  return { host, next: 0, final: false, bytes: 0, binary: false, truncated: null, busy: false,
           decoder: new TextDecoder("utf-8", { fatal: true }), line: "",
           ansi: { fg: null, bg: null, bold: false, dim: false, italic: false, ul: false, inverse: false, carry: "" } };
}
function write(nodes) {
  const pane = $("output");
  pane.append(...nodes);
  if ($("follow").checked) pane.scrollTop = pane.scrollHeight;
}
function noticeTails() {
  const lines = [];
  for (const t of tails.values()) {
    if (t.binary) lines.push(t.host + ": the output is not UTF-8 text (" + t.bytes + " bytes so far); not shown here. The host's journal and the run's result keep the bytes.");
    if (t.truncated) lines.push(t.host + ": " + t.truncated + " bytes over the agent's output cap were not shipped; the host's journal keeps everything.");
  }
  $("out-notice").hidden = !lines.length;
  setText($("out-notice"), lines.join(" "));
}
function emit(tail, text, merged) {
  const nodes = [];
  if (!merged) { renderText(tail.ansi, text, nodes); write(nodes); return; }
  tail.line += text;
  const lines = tail.line.split("\n");
  tail.line = lines.pop();
  for (const line of lines) {
    nodes.push(el("span", "host", "[" + tail.host + "] "));
    renderText(tail.ansi, line, nodes);
    nodes.push(document.createTextNode("\n"));
  }
  write(nodes);
}
function appendBytes(tail, bytes, merged) {
  tail.bytes += bytes.length;
  if (tail.binary) return noticeTails();
  let text;
  try { text = tail.decoder.decode(bytes, { stream: true }); } catch (error) { tail.binary = true; return noticeTails(); }
  if (text.includes("\u0000")) { tail.binary = true; return noticeTails(); }
  emit(tail, text, merged);
}
async function pollTail(tail, merged) {
  if (tail.busy || tail.final || !currentRun) return;
  tail.busy = true;
  const mine = outputGeneration;
  try {
    const answer = await api("/v1/runs/" + currentRun.id + "/tasks/" + encodeURIComponent(tail.host) + "/output?after=" + tail.next);
    if (mine !== outputGeneration) return;
    const bytes = answer.output != null ? new TextEncoder().encode(answer.output) :
      Uint8Array.from(atob(answer.output_base64), (c) => c.charCodeAt(0));
    if (bytes.length) appendBytes(tail, bytes, merged);
    tail.next = answer.next;
    if (answer.truncated_bytes) { tail.truncated = answer.truncated_bytes; noticeTails(); }
    if (answer.final) {
      tail.final = true;
      if (!tail.binary) {
        let rest = "";
        try { rest = tail.decoder.decode(); } catch (error) { tail.binary = true; noticeTails(); }
        if (rest) emit(tail, rest, merged);
        if (merged && tail.line) emit(tail, "\n", true);
      }
    }
  } catch (error) {
    if (mine === outputGeneration && !(error instanceof Unauthorized)) { $("out-notice").hidden = false; setText($("out-notice"), "output not updated: " + error.message); }
  } finally { tail.busy = false; }
}
const MERGED_HOSTS = 25;
let tails = new Map(), merged = false, outputGeneration = 0, selectedHost = null;
function showOutput(host) {
  outputGeneration++;
  merged = host == null;
  selectedHost = host;
  tails = new Map();
  $("output").replaceChildren(); $("out-notice").hidden = true;
  $("output").dataset.host = host || "";
  hostActions();
  if (host) {
    tails.set(host, newTail(host));
    setText($("out-title"), "Output of " + host);
  } else {
    const hosts = shownHosts().slice(0, MERGED_HOSTS);
    for (const h of hosts) tails.set(h, newTail(h));
    setText($("out-title"), "Merged output of " + hosts.length + " host" + (hosts.length === 1 ? "" : "s") +
      (taskRows.size > hosts.length ? " (the first " + MERGED_HOSTS + " shown in the table)" : ""));
  }
  for (const row of taskRows.values()) markSelected(row);
  pollTails();
}
// Cancel is offered for a host whose task is not final (as last read).
function hostActions() {
  const row = selectedHost && !merged ? taskRows.get(selectedHost) : null;
  $("rerun-host").hidden = !selectedHost || merged;
  $("cancel-host").hidden = !row || !row.task || !["pending", "queued", "running"].includes(row.task.state);
}
function shownHosts() { return Array.from($("tasks").children).map((tr) => tr.dataset.host); }
function pollTails() { for (const tail of tails.values()) pollTail(tail, merged); }
$("merged").onclick = () => { if (currentRun) location.hash = "run/" + currentRun.id; };

// --- The run view ----------------------------------------------------------------------------
let currentRun = null;     // the run's summary as last read
let runJob = null;          // its job spec (read once)
let taskSort = "state", taskPages = [""], runBusy = false, runGeneration = 0;
const taskRows = new Map();
function tasksQuery() {
  const p = ["sort=" + taskSort, "limit=200"];
  const after = taskPages[taskPages.length - 1];
  if (after) p.push("after=" + encodeURIComponent(after));
  if ($("tasks-filter").value) p.push("state=" + encodeURIComponent($("tasks-filter").value));
  const q = $("tasks-search").value.trim();
  if (q) p.push("q=" + encodeURIComponent(q));
  if (!runJob) p.push("job=1");
  return p.join("&");
}
async function openRun(id, host) {
  const same = currentRun && currentRun.id === id;
  if (!same) {
    runGeneration++; runBusy = false;
    currentRun = { id }; runJob = null; taskPages = [""];
    for (const row of taskRows.values()) row.tr.remove();
    taskRows.clear();
    $("run-error").textContent = ""; setText($("run-title"), "Run " + id);
    setText($("run-state"), ""); $("run-counters").replaceChildren(); $("run-bar").replaceChildren();
    outputGeneration++; tails = new Map(); $("output").replaceChildren(); $("output").dataset.host = ""; $("out-notice").hidden = true;
  }
  // The same run: the pane changes at once; a new one: after its first read.
  if (same) { if (host !== selectedHost || (host == null) !== merged) showOutput(host); refreshRun(); return; }
  await refreshRun();
  showOutput(host);
}
async function refreshRun() {
  if (runBusy || !currentRun) return;
  runBusy = true;
  const mine = runGeneration, id = currentRun.id;
  try {
    const page = await api("/v1/runs/" + id + "/tasks?" + tasksQuery());
    if (mine !== runGeneration) return;
    if (page.run.job) runJob = page.run.job;
    currentRun = page.run;
    drawRun(page);
    updated();
  } catch (error) {
    if (mine === runGeneration && error.status === 404) { $("run-error").textContent = error.message; }
    failed("run", error);
  } finally { if (mine === runGeneration) runBusy = false; }
}
function drawRun(page) {
  const run = page.run;
  setText($("run-title"), "Run " + run.id + " \u00B7 " + run.name);
  setText($("run-state"), run.state); $("run-state").className = "badge " + run.state;
  const job = runJob || {};
  const script = job.shell != null ? job.shell : job.argv && job.argv[0] === "python3" && job.argv[1] === "-c" && job.argv.length === 3 ?
    "# python3 -c\n" + job.argv[2] : (job.argv || []).map((w) => /^[A-Za-z0-9_@%+=:,.\/-]+$/.test(w) ? w : "'" + w.replace(/'/g, "'\\''") + "'").join(" ");
  setText($("run-script-text"), script);
  setText($("run-target"), targetText(run.target) + " \u2192 " + run.tasks + " host" + (run.tasks === 1 ? "" : "s") + " (resolved when created)");
  setText($("run-created"), run.created_at ? new Date(run.created_at).toLocaleString() : "");
  setText($("run-duration"), span(run.duration_s) + (run.finished_at ? "" : " so far"));
  setText($("run-limits"), "deadline " + (run.timeout || "none") + " per host \u00B7 at most " + run.max_concurrency +
    " at once \u00B7 stops after " + run.max_errors + " error" + (run.max_errors === 1 ? "" : "s") + " (" + run.errors + " so far)");
  const kinds = kindCounts(run.counts, run.failed_exits);
  drawBar($("run-bar"), kinds, run.tasks);
  const counters = [];
  let sum = 0;
  for (const [key, label, mark] of KINDS) {
    sum += kinds[key];
    if (!kinds[key]) continue;
    const item = el("span"); item.dataset.kind = key;
    item.append(el("span", "key s-" + key), mark + " " + label + " " + kinds[key]);
    counters.push(item);
  }
  const total = el("span", "total", "= " + run.tasks + " host" + (run.tasks === 1 ? "" : "s"));
  total.dataset.total = String(run.tasks); total.dataset.sum = String(sum);
  counters.push(total);
  $("run-counters").replaceChildren(...counters);
  $("cancel-run").hidden = !!run.finished_at;
  syncRows($("tasks"), taskRows, page.tasks, (t) => t.host, makeTaskRow, updateTaskRow);
  tabStop($("tasks"), selectedHost && taskRows.get(selectedHost) ? taskRows.get(selectedHost).tr : null);
  $("notasks").hidden = page.tasks.length > 0;
  const first = taskPages.length > 1 ? "page " + taskPages.length + ": " : "";
  $("tasks-shown").textContent = first + page.tasks.length + " of " + page.matched + " shown";
  $("tasks-next").hidden = !page.next; $("tasks-next").dataset.next = page.next || "";
  $("tasks-prev").hidden = taskPages.length < 2;
  for (const th of document.querySelectorAll("#run-view th[data-sort]"))
    if (th.dataset.sort === taskSort) th.setAttribute("aria-sort", "ascending"); else th.removeAttribute("aria-sort");
  hostActions();
  // A tail whose host went on (or a new host in the merged view) is polled again.
  if (merged) for (const host of shownHosts().slice(0, MERGED_HOSTS)) if (!tails.has(host) && tails.size < MERGED_HOSTS) tails.set(host, newTail(host));
  pollTails();
}
function makeTaskRow(task) {
  const tr = el("tr", "row"); tr.dataset.host = task.host;
  const cells = [0, 1, 2, 3, 4].map(() => tr.appendChild(el("td")));
  cells[0].className = "mono";
  const badge = cells[1].appendChild(el("span", "badge"));
  tr.addEventListener("click", () => { location.hash = "run/" + currentRun.id + "/" + encodeURIComponent(task.host); });
  return { tr, cells, badge, task: null };
}
function markSelected(row) {
  const on = !merged && row.tr.dataset.host === selectedHost;
  row.tr.classList.toggle("selected", on);
  row.tr.setAttribute("aria-selected", on ? "true" : "false");
}
function taskDuration(task) {
  if (task.duration_s != null) return span(task.duration_s);
  if (task.state === "running" && task.elapsed_s != null) return span(Math.floor(task.elapsed_s + (Date.now() - task.readAt) / 1000)) + "\u2026";
  return "";
}
function updateTaskRow(row, task) {
  task.readAt = Date.now();
  row.task = task;
  row.tr.dataset.state = task.state;
  setText(row.cells[0], task.host);
  taskBadge(row.badge, task);
  setText(row.cells[2], task.exit_code != null ? String(task.exit_code) : task.signal ? "SIG" + task.signal : "");
  setText(row.cells[3], taskDuration(task));
  const note = taskNote(task);
  setText(row.cells[4], note); row.cells[4].title = note;
  markSelected(row);
}
setInterval(() => {
  if (view !== "run") return;
  for (const row of taskRows.values()) if (row.task && row.task.state === "running") setText(row.cells[3], taskDuration(row.task));
}, 1000);
function resetTasks() { runGeneration++; runBusy = false; taskPages = [""]; refreshRun(); }
$("tasks-filter").onchange = resetTasks;
let tasksTimer = null;
$("tasks-search").oninput = () => { clearTimeout(tasksTimer); tasksTimer = setTimeout(resetTasks, 250); };
$("tasks-next").onclick = () => { if ($("tasks-next").dataset.next) { taskPages.push($("tasks-next").dataset.next); resetPage(); } };
$("tasks-prev").onclick = () => { if (taskPages.length > 1) { taskPages.pop(); resetPage(); } };
function resetPage() { runGeneration++; runBusy = false; refreshRun(); }
for (const button of document.querySelectorAll("#run-view th button[data-sort]")) {
  button.onclick = () => { taskSort = button.dataset.sort; taskPages = [""]; resetPage(); };
}
keyboardRows($("tasks"), (tr) => { location.hash = "run/" + currentRun.id + "/" + encodeURIComponent(tr.dataset.host); });

async function act(button, work) {
  $("run-error").textContent = "";
  button.disabled = true;
  try { await work(); } catch (error) { if (!(error instanceof Unauthorized)) $("run-error").textContent = error.message; }
  finally { button.disabled = false; }
}
$("cancel-run").onclick = () => act($("cancel-run"), async () => {
  await api("/v1/runs/" + currentRun.id, { method: "DELETE" });
  await refreshRun();
});
$("cancel-host").onclick = () => act($("cancel-host"), async () => {
  await api("/v1/runs/" + currentRun.id + "/tasks/" + encodeURIComponent(selectedHost), { method: "DELETE" });
  await refreshRun();
});
async function rerun(hosts) {
  const run = await api("/v1/runs/" + currentRun.id + "/rerun",
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ hosts }) });
  location.hash = "run/" + run.id;
}
$("rerun-all").onclick = () => act($("rerun-all"), () => rerun("all"));
$("rerun-failed").onclick = () => act($("rerun-failed"), () => rerun("failed"));
$("rerun-lost").onclick = () => act($("rerun-lost"), () => rerun("lost"));
$("rerun-host").onclick = () => act($("rerun-host"), () => rerun([selectedHost]));

// --- Refresh loop ----------------------------------------------------------------------------
setInterval(() => {
  if ($("main").hidden) return;
  if (view === "runs") refreshRuns();
  else if (view === "hosts") refreshHosts();
  else if (view === "run" && currentRun) { if (!currentRun.finished_at || Date.now() % 5000 < 1000) refreshRun(); else pollTails(); }
}, 1000);
setInterval(() => { if (view === "new" && !$("main").hidden) loadAgents().then(resolveTarget, (error) => failed("hosts", error)); }, 5000);
route();
</script>
</body>
</html>
"""#
}
