/// The page at `/`: one self-contained document (no external assets, works
/// offline). A live table of jobs (filters, search, cursor paging), a form
/// to submit one (shell, or argv split with shell-like quoting), and a job
/// view whose output streams in over the events API (ANSI colours, the
/// tail after dropped bytes with a marker between, a notice and a download
/// for output that is not text), with a note built from the result, cancel
/// and re-run. All job text goes through `textContent`, never `innerHTML`.
/// No inline `style` attributes or event-handler attributes: the
/// Content-Security-Policy admits exactly the one `<script>` and the one
/// `<style>` element, by hash (colours beyond the 16 named ones are set
/// through the CSSOM, which the policy does not govern). The pieces it
/// shares with the fleet page come from `PageParts`.
enum WebPage {
    static let html = #"""
\#(PageParts.head(title: "Corral agent"))
<style>
\#(PageParts.baseStyle)
  header { display:flex; flex-wrap:wrap; align-items:center; gap:6px 16px; padding:10px 20px; background:#1d2330; color:#fff; }
  header h1 { font-size:17px; margin:0; font-weight:600; letter-spacing:.2px; }
  header .info, header .counts { color:#c9d1e0; font-size:13px; }
  header .conn { margin-left:auto; font-size:12px; color:#c9d1e0; }
  #banner { padding:10px 20px; background:#fbe7e6; color:#7a1d18; border-bottom:2px solid var(--bad); font-weight:600; }
  #banner.warn { background:#fcf1dd; color:#5c3b06; border-bottom-color:var(--warn); }
  #login { max-width:520px; margin:40px auto; }
  #login form { grid-template-columns: 1fr auto; }
  main { display:grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap:16px; padding:16px 20px; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:14px 16px; min-width:0; }
  h2 { font-size:14px; margin:0 0 10px; color:var(--muted); text-transform:uppercase; letter-spacing:.6px; }
  form { display:grid; grid-template-columns: minmax(0, 1fr) auto auto auto auto; gap:8px; align-items:center; margin-bottom:14px; }
  input, select, button { font:inherit; padding:6px 8px; border:1px solid #c9ced6; border-radius:6px; background:#fff; color:var(--ink); min-width:0; }
  input#command { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
  input#timeout { width:72px; } input#name { width:110px; }
  button, a.button { background:var(--accent); color:#fff; border:1px solid var(--accent); border-radius:6px; cursor:pointer;
                     padding:6px 10px; font:inherit; text-decoration:none; }
  button.secondary, a.button.secondary { background:#fff; color:var(--ink); border-color:#c9ced6; }
  button.danger { background:var(--bad); border-color:var(--bad); }
\#(PageParts.controlStyle)
  .toolbar.below { margin-top:8px; }
  .tablewrap { max-height: calc(100vh - 250px); overflow-y:auto; overflow-x:hidden; border:1px solid var(--line); border-radius:6px; }
  table { border-collapse:collapse; width:100%; font-size:13px; table-layout:fixed; }
  col.c-id { width:64px; } col.c-name { width:16%; } col.c-state { width:150px; } col.c-exit { width:80px; }
  col.c-started { width:100px; } col.c-duration { width:82px; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
  th { position:sticky; top:0; background:#fafbfc; color:var(--muted); font-weight:600; z-index:1; }
  td.cmd { font-family: ui-monospace, Menlo, monospace; }
  tr.job { cursor:pointer; }
  tr.job:hover { background:#f2f5fb; }
  tr.job.selected { background:#e8effd; box-shadow: inset 4px 0 0 var(--accent); }
  .badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; background:#eef0f3; color:var(--muted); }
  .badge.running { background:#e5edff; color:var(--run); }
  .badge.ok { background:#e3f4ea; color:var(--ok); }
  .badge.fail { background:#fbe7e6; color:var(--bad); }
  .badge.timed_out, .badge.cancelled { background:#fcf1dd; color:var(--warn); }
  dl { display:grid; grid-template-columns: 96px minmax(0, 1fr); gap:4px 12px; margin:0 0 12px; font-size:13px; }
  dt { color:var(--muted); } dd { margin:0; overflow-wrap:anywhere; }
  dd#job-command { font-family: ui-monospace, Menlo, monospace; white-space:pre-wrap; }
  ul#job-note { margin:0; padding-left:18px; } ul#job-note li { margin:0 0 2px; }
  .outhead { display:flex; flex-wrap:wrap; align-items:center; gap:8px; margin-bottom:6px; }
  .outhead h2 { margin:0; margin-right:auto; }
  .outhead a.button { font-size:12px; padding:3px 8px; }
  .notice { background:#fcf1dd; color:#5c3b06; border:1px solid #ecd3a4; border-radius:6px; padding:6px 10px; margin-bottom:6px; }
  pre#output { background:var(--term-bg); color:var(--term-fg); padding:10px 12px; border-radius:6px; min-height:160px;
               max-height: calc(100vh - 440px); overflow:auto; white-space:pre-wrap; overflow-wrap:anywhere; font-size:12.5px; margin:0; }
  #output .stderr { color:#ffb4a8; }
  pre#output .gap { display:block; margin:6px 0; padding:4px 8px; background:#3b2f12; color:#ffd27a; border:1px dashed #ffd27a;
                    border-radius:4px; font-weight:600; white-space:normal; }
\#(PageParts.terminalStyle("#output"))
  .empty { color:var(--muted); padding:24px 0; text-align:center; }
  .error { color:var(--bad); margin:6px 0; min-height:1em; }
  .jobhead { display:flex; flex-wrap:wrap; align-items:center; gap:10px; margin-bottom:10px; }
  .jobhead h3 { margin:0; font-size:16px; overflow-wrap:anywhere; }
  .jobhead .actions { margin-left:auto; display:flex; gap:8px; }
  .sr { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
  @media (max-width: 1279px) { main { grid-template-columns: minmax(0, 1fr); } .tablewrap { max-height: 60vh; } pre#output { max-height: 70vh; } }
  @media (max-width: 700px) { form { grid-template-columns: 1fr 1fr; } input#command { grid-column: 1 / -1; } }
</style>
</head>
<body>
<header><h1>Corral agent</h1><span class="info" id="hostinfo"></span><span class="counts" id="counts"></span>
  <span class="conn" id="conn" aria-live="polite"></span></header>
<div id="banner" role="alert" hidden></div>
\#(PageParts.tokenPrompt("agent"))
<main id="main">
  <section aria-labelledby="jobs-title">
    <h2>Submit a job</h2>
    <form id="submit">
      <input id="command" placeholder="shell command, e.g. echo hello; sleep 2" autocomplete="off" required aria-label="command">
      <select id="mode" title="how the command is run" aria-label="mode"><option value="shell">sh -c</option><option value="argv">argv</option></select>
      <input id="name" placeholder="name" autocomplete="off" aria-label="name (optional)" title="name (optional)">
      <input id="timeout" value="60s" title="deadline" aria-label="deadline">
      <button type="submit" id="run">Run</button>
    </form>
    <div class="error" id="submit-error" role="status"></div>
    <h2 id="jobs-title">Jobs</h2>
    <div class="toolbar">
      <label>Show <select id="filter">
        <option value="">all</option><option value="queued">queued</option><option value="running">running</option>
        <option value="final">finished</option><option value="failed">failed</option><option value="exited">exited</option>
        <option value="signaled">signaled</option><option value="timed_out">timed out</option>
        <option value="cancelled">cancelled</option><option value="failed_to_start">failed to start</option>
        <option value="lost">lost</option>
      </select></label>
      <input id="search" type="search" placeholder="search command or name" aria-label="search command or name" autocomplete="off">
      <span id="shown" aria-live="polite"></span>
    </div>
    <div class="tablewrap">
      <table aria-describedby="table-help">
        <colgroup><col class="c-id"><col class="c-name"><col class="c-cmd"><col class="c-state"><col class="c-exit"><col class="c-started"><col class="c-duration"></colgroup>
        <thead><tr><th scope="col">Job</th><th scope="col">Name</th><th scope="col">Command</th><th scope="col">State</th>
          <th scope="col">Exit</th><th scope="col">Started</th><th scope="col">Duration</th></tr></thead>
        <tbody id="jobs"></tbody>
      </table>
      <div class="empty" id="nojobs">No jobs yet.</div>
    </div>
    <p class="sr" id="table-help">Arrow keys move between jobs; Enter opens one.</p>
    <div class="toolbar below"><button class="secondary" id="more" hidden>Load older</button></div>
  </section>
  <section id="view" aria-label="job">
    <div class="empty" id="noview">Select a job to see its output.</div>
    <div id="job" hidden>
      <div class="jobhead"><h3 id="job-id"></h3><span class="badge" id="job-state"></span>
        <span class="actions"><button class="secondary" id="rerun">Re-run</button><button class="danger" id="cancel">Cancel</button></span></div>
      <dl>
        <dt>Command</dt><dd id="job-command"></dd>
        <dt>Started</dt><dd id="job-started"></dd>
        <dt>Duration</dt><dd id="job-duration"></dd>
        <dt>Timeout</dt><dd id="job-timeout"></dd>
        <dt>Exit</dt><dd id="job-exit"></dd>
        <dt>Note</dt><dd><ul id="job-note"></ul></dd>
      </dl>
      <div class="outhead"><h2>Output</h2>
        <a class="button secondary" id="download-stdout" download>Download stdout</a>
        <a class="button secondary" id="download-stderr" download>Download stderr</a></div>
      <div class="notice" id="binary" role="status" hidden></div>
      <div class="notice" id="cut" role="status" hidden></div>
      <pre id="output" tabindex="0" aria-label="output"></pre>
    </div>
  </section>
</main>
<script>
\#(PageParts.scriptStart)
const PAGE = 100;
const rows = new Map();   // job id -> { tr, cells, job }
let oldest = null;        // seq of the oldest job loaded with "Load older" (null: the newest page only)
let olderLeft = false;    // whether "Load older" may find more
let generation = 0;       // bumped when the filter or search changes: older answers are dropped
let selected = null;      // job id in view
let current = null;       // the job in view, as last read
let source = null;        // EventSource of the job in view
let out = null;           // output state of the job in view
let refreshing = false;

const ICONS = { ok: "\u2713", fail: "\u2717", running: "\u25B6", queued: "\u2026", timed_out: "\u25F7", cancelled: "\u2298" };
function tone(job) {
  if (job.state === "exited") return job.exit_code === 0 ? "ok" : "fail";
  if (["signaled", "failed_to_start", "lost"].includes(job.state)) return "fail";
  return job.state;
}
function stateBadge(el, job) {
  const t = tone(job);
  el.textContent = (ICONS[t] || "") + " " + job.state.replace(/_/g, " ") + (job.state === "exited" ? (job.exit_code === 0 ? " ok" : " (failed)") : "");
  el.className = "badge " + t;
}
function time(text) { return text ? new Date(text).toLocaleTimeString() : ""; }
\#(PageParts.textHelpers)
function duration(job) {
  if (job.duration_s != null) return span(job.duration_s);
  if (job.started_at && !job.final) return span(Math.max(0, Math.floor((Date.now() - new Date(job.started_at)) / 1000))) + "\u2026";
  return "";
}
function exitText(job) {
  if (job.exit_code != null) return String(job.exit_code);
  if (job.signal) return "SIG" + job.signal;
  return "";
}

// --- API, token, health -----------------------------------------------------
class Unauthorized extends Error {}
async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {}));
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) { showLogin(); throw new Unauthorized("a token is required"); }
  if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
  return body;
}
\#(PageParts.showLogin("agent"))
let unreachableSince = null;
function banner(text, warn) {
  $("banner").hidden = !text; $("banner").textContent = text || "";
  $("banner").className = warn ? "warn" : "";
}
async function health() {
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    const body = await response.json();
    unreachableSince = null;
    $("hostinfo").textContent = [body.host, body.version && "corral " + body.version, body.containment && "containment: " + body.containment.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase()].filter(Boolean).join(" \u00B7 ");
    if (body.status === "shutting_down") banner("The agent is shutting down: it takes no new jobs; running jobs get its shutdown grace, then are stopped.", false);
    else if (body.status === "draining") banner("The agent is draining: it finishes the jobs it has, takes no new ones, then exits.", true);
    else if (body.status === "degraded") banner("The agent takes no jobs: " + (body.reason || "its journal cannot be written") + ".", false);
    else banner(null);
  } catch (error) {
    if (!unreachableSince) unreachableSince = new Date();
    banner("The agent is unreachable since " + unreachableSince.toLocaleTimeString() + " (" + error.message + "); retrying every second.", false);
  }
}

// --- The table ----------------------------------------------------------------
function query(extra) {
  const params = new URLSearchParams();
  if ($("filter").value) params.set("state", $("filter").value);
  const text = $("search").value.trim();
  if (text) params.set("q", text);
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return "/v1/jobs?" + params.toString();
}
function seqOf(id) { return Number(id.slice(1)); }
function makeRow(job) {
  const tr = document.createElement("tr");
  tr.className = "job"; tr.dataset.id = job.id; tr.tabIndex = -1;
  const cells = [];
  for (let index = 0; index < 7; index++) { const td = document.createElement("td"); tr.appendChild(td); cells.push(td); }
  cells[2].className = "cmd";
  const badge = document.createElement("span"); cells[3].appendChild(badge);
  tr.addEventListener("click", () => { location.hash = job.id; });
  return { tr, cells, badge, job: null };
}
function updateRow(row, job) {
  row.job = job;
  setText(row.cells[0], job.id);
  setText(row.cells[1], job.name || ""); row.cells[1].title = job.name || "";
  setText(row.cells[2], job.command); row.cells[2].title = job.command;
  stateBadge(row.badge, job);
  setText(row.cells[4], exitText(job)); row.cells[4].title = job.signal ? "the leader ended by SIG" + job.signal : "";
  setText(row.cells[5], time(job.started_at));
  setText(row.cells[6], duration(job));
  row.tr.classList.toggle("selected", job.id === selected);
  row.tr.setAttribute("aria-selected", job.id === selected ? "true" : "false");
}
function render(jobs) {
  const body = $("jobs");
  const keep = new Set(jobs.map((job) => job.id));
  for (const [id, row] of rows) if (!keep.has(id)) { row.tr.remove(); rows.delete(id); }
  jobs.forEach((job, index) => {
    let row = rows.get(job.id);
    if (!row) { row = makeRow(job); rows.set(job.id, row); }
    updateRow(row, job);
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
  });
  // One row is in the tab order: the focused one, the selected one, or the first.
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("tr.job");
  const active = (focused && rows.get(focused.dataset.id)) || rows.get(selected) || (jobs.length && rows.get(jobs[0].id));
  for (const row of rows.values()) row.tr.tabIndex = row === active ? 0 : -1;
  $("nojobs").hidden = jobs.length > 0;
  $("nojobs").textContent = $("filter").value || $("search").value.trim() ? "No jobs match." : "No jobs yet.";
}
// The window shown is re-read whole on every refresh: the newest page, or,
// once older pages were loaded, every job from the oldest loaded one up
// (`since`), a page of 1000 at a time. So nothing shown is stale, and a job
// arriving while paging shifts no row into a gap or a duplicate.
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  const mine = generation;
  try {
    let jobs = [], page, after = null, next = null;
    for (;;) {
      const extra = { limit: oldest == null ? PAGE : 1000 };
      if (oldest != null) extra.since = "j" + oldest;
      if (after) extra.after = after;
      page = await api(query(extra));
      if (mine !== generation) return;
      jobs = jobs.concat(page.jobs);
      if (oldest == null) { next = page.next; break; }
      if (!page.next) { next = olderLeft ? "j" + oldest : null; break; }
      after = page.next;
    }
    render(jobs);
    $("more").hidden = !next;
    $("more").dataset.next = next || "";
    $("counts").textContent = page.running + " running \u00B7 " + page.queued + " queued";
    $("shown").textContent = jobs.length + " shown";
    $("conn").textContent = "updated " + new Date().toLocaleTimeString();
    if (current && rows.get(current.id) && rows.get(current.id).job.state !== current.state && !current.final) reloadView();
  } catch (error) {
    if (!(error instanceof Unauthorized)) $("conn").textContent = "list not updated: " + error.message;
  } finally {
    refreshing = false;
  }
}
$("more").onclick = async () => {
  const cursor = $("more").dataset.next;
  if (!cursor) return;
  const mine = generation;
  $("more").disabled = true;
  try {
    const page = await api(query({ limit: PAGE, after: cursor }));
    if (mine !== generation) return;
    if (page.jobs.length) oldest = seqOf(page.jobs[page.jobs.length - 1].id);
    else if (oldest == null) oldest = seqOf(cursor);
    olderLeft = !!page.next;
    while (refreshing) await new Promise((resolve) => setTimeout(resolve, 20));
    await refresh();
  } catch (error) {
    $("conn").textContent = "older jobs not loaded: " + error.message;
  } finally {
    $("more").disabled = false;
  }
};
function resetList() { generation++; oldest = null; olderLeft = false; refreshing = false; refresh(); }
$("filter").onchange = resetList;
let searchTimer = null;
$("search").oninput = () => { clearTimeout(searchTimer); searchTimer = setTimeout(resetList, 250); };
\#(PageParts.keyboardRows)
keyboardRows($("jobs"), (tr) => { location.hash = tr.dataset.id; });

// --- Submitting ---------------------------------------------------------------
\#(PageParts.splitWords)
async function submit(spec) {
  return api("/v1/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(spec) });
}
$("submit").onsubmit = async (event) => {
  event.preventDefault();
  $("submit-error").textContent = "";
  const text = $("command").value.trim();
  if (!text) return;
  let spec;
  try { spec = $("mode").value === "shell" ? { shell: text } : { argv: splitWords(text) }; }
  catch (error) { $("submit-error").textContent = error.message; return; }
  if ($("timeout").value.trim()) spec.timeout = $("timeout").value.trim();
  if ($("name").value.trim()) spec.id = $("name").value.trim();
  $("run").disabled = true;
  try {
    const job = await submit(spec);
    $("command").value = "";
    location.hash = job.id;
    refresh();
  } catch (error) {
    $("submit-error").textContent = error.message;
  } finally {
    $("run").disabled = false;
  }
};

// --- The job view -------------------------------------------------------------
function noteLines(job) {
  const r = job.result, lines = [];
  const limit = job.timeout_s != null ? span(job.timeout_s) : null;
  if (!job.final) {
    lines.push(job.state === "queued" ? "Waiting for a free slot." :
      "Running" + (limit ? "; its deadline is " + limit + " after the start." : "; no deadline."));
    return lines;
  }
  if (!r) { if (job.message) lines.push(job.message); return lines; }
  const leader = r.exit_code != null ? "the leader exited with code " + r.exit_code :
    r.signal ? "SIG" + r.signal + " ended the leader" : null;
  const list = (items) => items.slice(0, 20).map((p) => p.command + " (pid " + p.pid + ")").join(", ") + (items.length > 20 ? ", \u2026" : "");
  switch (r.outcome) {
    case "exited": lines.push(r.exit_code === 0 ? "Exited with code 0." : "Failed: exited with code " + r.exit_code + "."); break;
    case "signaled": lines.push("Failed: killed by signal SIG" + r.signal + ", not sent by Corral."); break;
    case "timed_out": lines.push("Timed out: the " + (limit ? limit + " " : "") + "timeout passed, and the stop sequence ran" + (leader ? ": " + leader : "") + "."); break;
    case "cancelled": lines.push((job.message ? job.message[0].toUpperCase() + job.message.slice(1) : "Cancelled") + (leader ? "; " + leader : "") + "."); break;
    case "failed_to_start": lines.push("Failed to start" + (r.stage ? " (" + r.stage + ")" : "") + ": " + (r.error || "") + (r.errno != null ? " (errno " + r.errno + ")" : "") + "."); break;
    case "lost": lines.push("Lost: " + (r.error || job.message || "the agent died under the job") + "."); break;
    default: lines.push(r.outcome);
  }
  const seen = new Set();  // a process found twice (cgroup and sweep) is listed once
  const killed = (r.killed || []).filter((p) => !seen.has(p.pid + " " + p.command) && seen.add(p.pid + " " + p.command));
  if (killed.length) lines.push("Killed: " + list(killed) + ".");
  if ((r.outcome === "timed_out" || r.outcome === "cancelled") && r.pid != null)
    lines.push("Stopped: the job's " + (r.containment === "cgroup" ? "cgroup" : "process group") + " (leader pid " + r.pid + ").");
  if (r.escapees_killed) lines.push(r.escapees_killed + " process(es) had left the job's process group; the sweep found and killed them.");
  if (r.lingering_killed) lines.push("Processes still running after the leader exited were killed.");
  if (r.pipes_force_closed) {
    const holders = r.pipe_holders || [];
    lines.push("An output pipe was still held open" + (holders.length ? " by " + holders.map((h) => h.command + " (pid " + h.pid + (h.killed ? ", killed" : ", not killed") + ")").join(", ") : "") + "; Corral closed it.");
  }
  if (r.left_running_count) lines.push("Left running (leave_running): " + r.left_running_count + " process(es)" + ((r.left_running || []).length ? ": " + list(r.left_running) : "") + ".");
  if (r.leader_reaped === false) lines.push("The leader had not exited even after SIGKILL (stuck in the kernel); it is reaped in the background.");
  for (const stream of ["stdout", "stderr"])
    if (r[stream + "_dropped"]) lines.push(stream + ": " + r[stream + "_dropped"] + " bytes over max_output were dropped; the head and the tail are kept.");
  if (r.containment) lines.push("Containment: " + (r.containment === "cgroup" ? "cgroup" : "process group") + (r.cpu_s != null ? "; CPU time " + r.cpu_s.toFixed(3) + " s" : "") + ".");
  return lines;
}
function showJob(job) {
  current = job;
  $("noview").hidden = true;
  $("job").hidden = false;
  $("job-id").textContent = job.id + (job.name ? " \u00B7 " + job.name : "");
  stateBadge($("job-state"), job);
  $("job-command").textContent = job.command;
  $("job-started").textContent = job.started_at ? new Date(job.started_at).toLocaleString() : "not yet";
  $("job-duration").textContent = duration(job);
  $("job-timeout").textContent = job.timeout_s != null ? span(job.timeout_s) : "none";
  $("job-exit").textContent = job.exit_code != null ? String(job.exit_code) : job.signal ? "none (SIG" + job.signal + " ended the leader)" : (job.final ? "none" : "");
  $("job-note").replaceChildren(...noteLines(job).map((text) => { const li = document.createElement("li"); li.textContent = text; return li; }));
  $("cancel").hidden = job.final;
  $("rerun").hidden = !job.spec;
  for (const stream of ["stdout", "stderr"]) {
    $("download-" + stream).href = "/v1/jobs/" + encodeURIComponent(job.id) + "/output?stream=" + stream + "&download=1";
  }
  const row = rows.get(job.id);
  if (row) updateRow(row, Object.assign({}, row.job, job));
}
setInterval(() => { if (current && !current.final) $("job-duration").textContent = duration(current); }, 1000);
async function reloadView() {
  if (!selected) return;
  const id = selected;
  try { const job = await api("/v1/jobs/" + encodeURIComponent(id)); if (id === selected) showJob(job); } catch (error) {}
}

// Output: per stream, a decoder (a character split between chunks is
// joined), the ANSI state, and the bytes seen (to place the tail).
function newOutput() {
  const stream = () => ({ decoder: new TextDecoder("utf-8", { fatal: true }), seen: 0, binary: false,
                          ansi: { fg: null, bg: null, bold: false, dim: false, italic: false, ul: false, inverse: false, carry: "" } });
  return { stdout: stream(), stderr: stream() };
}
function bytesOf(event) {
  if (event.text != null) return new TextEncoder().encode(event.text);
  return Uint8Array.from(atob(event.base64), (c) => c.charCodeAt(0));
}
\#(PageParts.ansi)
function render_text(stream, text, into) { renderText(out[stream].ansi, text, into, stream === "stderr" ? "stderr" : ""); }
function appendBytes(stream, bytes) {
  const s = out[stream];
  s.seen += bytes.length;
  cutNotice();
  if (s.binary) return binaryNotice();
  let text;
  try { text = s.decoder.decode(bytes, { stream: true }); } catch (error) { s.binary = true; return binaryNotice(); }
  if (text.includes("\u0000")) { s.binary = true; return binaryNotice(); }
  const pieces = [];
  render_text(stream, text, pieces);
  write(pieces);
}
function write(nodes) {
  const pane = $("output");
  const atBottom = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
  pane.append(...nodes);
  if (atBottom) pane.scrollTop = pane.scrollHeight;
}
function binaryNotice() {
  const which = ["stdout", "stderr"].filter((s) => out[s].binary);
  $("binary").hidden = false;
  $("binary").textContent = which.join(" and ") + (which.length > 1 ? " are" : " is") + " not UTF-8 text (" +
    which.map((s) => out[s].seen + " bytes of " + s).join(", ") + " so far): not shown here. Use Download for the exact bytes.";
}
// A running job's live output stops at its max_output: said at once, not
// left for the user to take for the end (the tail comes with the result).
function cutNotice() {
  const limit = current && !current.final ? current.live_output_limit : null;
  const cut = limit ? ["stdout", "stderr"].filter((s) => out[s].seen >= limit) : [];
  $("cut").hidden = !cut.length;
  $("cut").textContent = cut.length ? "Live output stops at the first " + limit + " bytes of " + cut.join(" and ") +
    " (max_output); the job goes on, and the kept tail is shown when it ends." : "";
}
function gapMarker(count, stream) {
  const el = document.createElement("span");
  el.className = "gap"; el.setAttribute("role", "note");
  el.textContent = "\u2026 " + count + " bytes of " + stream + " dropped (over max_output) \u2026 the tail follows";
  write([el]);
}
function resultBytes(result, key) {
  if (result[key] != null) return new TextEncoder().encode(result[key]);
  if (result[key + "_base64"] != null) return Uint8Array.from(atob(result[key + "_base64"]), (c) => c.charCodeAt(0));
  return new Uint8Array(0);
}
// After the live chunks, what the result kept beyond them: the tail, with
// a marker for the bytes no copy kept. The tail starts at head + dropped.
function finishOutput(result) {
  if (!result || !out) return;
  for (const stream of ["stdout", "stderr"]) {
    const head = resultBytes(result, stream), tail = resultBytes(result, stream + "_tail");
    const dropped = result[stream + "_dropped"] || 0;
    const whole = dropped ? tail : head;
    const start = dropped ? head.length + dropped : 0;
    const gap = start - out[stream].seen;
    const rest = gap >= 0 ? whole : whole.subarray(Math.min(whole.length, -gap));
    if (gap > 0) gapMarker(gap, stream);
    if (rest.length) appendBytes(stream, rest);
    if (!out[stream].binary) { try { const text = out[stream].decoder.decode(); if (text) { const p = []; render_text(stream, text, p); write(p); } } catch (error) { out[stream].binary = true; binaryNotice(); } }
  }
}
function onOutput(event) {
  const data = JSON.parse(event.data);
  appendBytes(data.stream === "stderr" ? "stderr" : "stdout", bytesOf(data));
}
async function open(id) {
  if (source) { source.close(); source = null; }
  selected = id; current = null; out = newOutput();
  for (const row of rows.values()) { row.tr.classList.toggle("selected", row.tr.dataset.id === id); row.tr.setAttribute("aria-selected", row.tr.dataset.id === id ? "true" : "false"); }
  $("output").replaceChildren(); $("binary").hidden = true; $("cut").hidden = true;
  try {
    showJob(await api("/v1/jobs/" + encodeURIComponent(id)));
  } catch (error) {
    $("noview").hidden = false; $("job").hidden = true;
    $("noview").textContent = error.message;
    return;
  }
  const mine = out;
  source = new EventSource("/v1/jobs/" + encodeURIComponent(id) + "/events");
  source.addEventListener("output", (event) => { if (out === mine) onOutput(event); });
  source.addEventListener("state", () => { if (out === mine) { reloadView(); refresh(); } });
  source.addEventListener("result", (event) => {
    if (out !== mine) return;
    const job = JSON.parse(event.data);
    showJob(job);
    cutNotice();
    finishOutput(job.result);
    source.close(); source = null;
    $("output").dataset.done = id;
    refresh();
  });
}
$("cancel").onclick = async () => {
  if (!selected) return;
  try { await api("/v1/jobs/" + encodeURIComponent(selected), { method: "DELETE" }); }
  catch (error) { $("job-note").replaceChildren(Object.assign(document.createElement("li"), { textContent: error.message })); }
};
$("rerun").onclick = async () => {
  if (!current || !current.spec) return;
  $("rerun").disabled = true;
  try { const job = await submit(current.spec); location.hash = job.id; refresh(); }
  catch (error) { $("job-note").replaceChildren(Object.assign(document.createElement("li"), { textContent: "Re-run refused: " + error.message })); }
  finally { $("rerun").disabled = false; }
};
window.addEventListener("hashchange", () => { if (location.hash.length > 1) open(location.hash.slice(1)); });
if (location.hash.length > 1) open(location.hash.slice(1));
health();
refresh();
setInterval(() => { health(); refresh(); }, 1000);
</script>
</body>
</html>
"""#
}
