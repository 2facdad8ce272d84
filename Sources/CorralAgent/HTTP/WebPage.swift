/// The page at `/`: one self-contained document (no external assets, works
/// offline). A live table of jobs, a form to submit one, and a job view
/// whose output streams in over the events API, with a cancel button. All
/// job text goes through `textContent`, never `innerHTML`. No inline
/// `style` attributes or event-handler attributes: the Content-Security-Policy
/// admits exactly the one `<script>` and the one `<style>` element, by hash.
enum WebPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Corral agent</title>
<style>
  :root { --bg:#f6f7f9; --panel:#fff; --ink:#1d2330; --muted:#667085; --line:#e3e6eb; --accent:#2f6fed;
          --ok:#1f8a4c; --bad:#c4322b; --warn:#b7791f; --run:#2f6fed; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; align-items:center; gap:16px; padding:12px 20px; background:#1d2330; color:#fff; }
  header h1 { font-size:17px; margin:0; font-weight:600; letter-spacing:.2px; }
  header .counts { color:#c9d1e0; font-size:13px; }
  header .conn { margin-left:auto; font-size:12px; color:#c9d1e0; }
  main { display:grid; grid-template-columns: minmax(420px, 1fr) minmax(420px, 1fr); gap:16px; padding:16px 20px; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:14px 16px; min-width:0; }
  h2 { font-size:14px; margin:0 0 10px; color:var(--muted); text-transform:uppercase; letter-spacing:.6px; }
  form { display:grid; grid-template-columns: 1fr auto auto auto; gap:8px; align-items:center; margin-bottom:14px; }
  input, select, button { font:inherit; padding:6px 8px; border:1px solid var(--line); border-radius:6px; background:#fff; }
  input#command { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
  input#timeout { width:80px; }
  button { background:var(--accent); color:#fff; border-color:var(--accent); cursor:pointer; }
  button.secondary { background:#fff; color:var(--ink); border-color:var(--line); }
  button.danger { background:var(--bad); border-color:var(--bad); }
  button:disabled { opacity:.5; cursor:default; }
  .toolbar { display:flex; gap:8px; align-items:center; margin-bottom:8px; color:var(--muted); }
  .toolbar.below { margin-top:8px; }
  .tablewrap { max-height: calc(100vh - 230px); overflow:auto; border:1px solid var(--line); border-radius:6px; }
  table { border-collapse:collapse; width:100%; font-size:13px; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { position:sticky; top:0; background:#fafbfc; color:var(--muted); font-weight:600; }
  td.cmd { max-width:260px; overflow:hidden; text-overflow:ellipsis; font-family: ui-monospace, Menlo, monospace; }
  tr.job { cursor:pointer; }
  tr.job:hover { background:#f2f5fb; }
  tr.job.selected { background:#e8effd; }
  .badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; background:#eef0f3; color:var(--muted); }
  .badge.running { background:#e5edff; color:var(--run); }
  .badge.exited.ok { background:#e3f4ea; color:var(--ok); }
  .badge.exited.fail, .badge.signaled, .badge.failed_to_start, .badge.lost { background:#fbe7e6; color:var(--bad); }
  .badge.timed_out, .badge.cancelled { background:#fcf1dd; color:var(--warn); }
  dl { display:grid; grid-template-columns: 110px 1fr; gap:4px 12px; margin:0 0 12px; font-size:13px; }
  dt { color:var(--muted); } dd { margin:0; word-break:break-all; }
  pre#output { background:#0f1420; color:#d8dee9; padding:10px 12px; border-radius:6px; min-height:160px;
               max-height: calc(100vh - 420px); overflow:auto; white-space:pre-wrap; word-break:break-all; font-size:12.5px; margin:0; }
  pre#output .stderr { color:#ffb4a8; }
  .empty { color:var(--muted); padding:24px 0; text-align:center; }
  .error { color:var(--bad); margin:6px 0; min-height:1em; }
  .jobhead { display:flex; align-items:center; gap:10px; margin-bottom:10px; }
  .jobhead h3 { margin:0; font-size:16px; }
  .jobhead button { margin-left:auto; }
  @media (max-width: 900px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header><h1>Corral agent</h1><span class="counts" id="counts"></span><span class="conn" id="conn"></span></header>
<main>
  <section>
    <h2>Submit a job</h2>
    <form id="submit">
      <input id="command" placeholder="shell command, e.g. echo hello; sleep 2" autocomplete="off" required>
      <select id="mode" title="how the command is run"><option value="shell">sh -c</option><option value="argv">argv</option></select>
      <input id="timeout" value="60s" title="deadline">
      <button type="submit" id="run">Run</button>
    </form>
    <div class="error" id="submit-error"></div>
    <div class="toolbar">
      <label>Show <select id="filter">
        <option value="">all</option><option value="queued">queued</option><option value="running">running</option>
        <option value="final">finished</option><option value="timed_out">timed out</option><option value="lost">lost</option>
      </select></label>
      <span id="shown"></span>
    </div>
    <div class="tablewrap">
      <table>
        <thead><tr><th>Job</th><th>Command</th><th>State</th><th>Exit</th><th>Started</th><th>Duration</th></tr></thead>
        <tbody id="jobs"></tbody>
      </table>
      <div class="empty" id="nojobs">No jobs yet.</div>
    </div>
    <div class="toolbar below"><button class="secondary" id="more" hidden>Load older</button></div>
  </section>
  <section id="view">
    <div class="empty" id="noview">Select a job to see its output.</div>
    <div id="job" hidden>
      <div class="jobhead"><h3 id="job-id"></h3><span class="badge" id="job-state"></span>
        <button class="danger" id="cancel">Cancel</button></div>
      <dl>
        <dt>Command</dt><dd id="job-command"></dd>
        <dt>Started</dt><dd id="job-started"></dd>
        <dt>Duration</dt><dd id="job-duration"></dd>
        <dt>Exit</dt><dd id="job-exit"></dd>
        <dt>Note</dt><dd id="job-message"></dd>
      </dl>
      <h2>Output</h2>
      <pre id="output"></pre>
    </div>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let extraPages = [];      // older pages loaded with "Load older"
let selected = null;      // job id in view
let source = null;        // EventSource of the job in view
const decoder = new TextDecoder();

function stateBadge(el, job) {
  el.textContent = job.state.replace(/_/g, " ");
  el.className = "badge " + job.state + (job.state === "exited" ? (job.exit_code === 0 ? " ok" : " fail") : "");
}
function time(text) { return text ? new Date(text).toLocaleTimeString() : ""; }
function duration(job) {
  if (job.duration_s != null) return job.duration_s.toFixed(job.duration_s < 10 ? 2 : 1) + " s";
  if (job.started_at && !job.final) return ((Date.now() - new Date(job.started_at)) / 1000).toFixed(0) + " s…";
  return "";
}
function exitText(job) {
  if (job.exit_code != null) return String(job.exit_code);
  if (job.signal) return job.signal;
  return "";
}
async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
  return body;
}
function row(job) {
  const tr = document.createElement("tr");
  tr.className = "job" + (job.id === selected ? " selected" : "");
  tr.dataset.id = job.id;
  const cells = [job.id, job.command, null, exitText(job), time(job.started_at), duration(job)];
  cells.forEach((value, index) => {
    const td = document.createElement("td");
    if (index === 1) { td.className = "cmd"; td.title = job.command; }
    if (index === 2) { const b = document.createElement("span"); stateBadge(b, job); td.appendChild(b); }
    else td.textContent = value;
    tr.appendChild(td);
  });
  tr.onclick = () => { location.hash = job.id; };
  return tr;
}
async function refresh() {
  try {
    const filter = $("filter").value;
    const page = await api("/v1/jobs?limit=100" + (filter ? "&state=" + filter : ""));
    const jobs = page.jobs.concat(...extraPages);
    const body = $("jobs");
    body.replaceChildren(...jobs.map(row));
    $("nojobs").hidden = jobs.length > 0;
    $("more").hidden = !(extraPages.length ? extraPages[extraPages.length - 1].next : page.next);
    $("more").dataset.next = extraPages.length ? (extraPages[extraPages.length - 1].next || "") : (page.next || "");
    $("counts").textContent = page.running + " running · " + page.queued + " queued";
    $("shown").textContent = jobs.length + " shown";
    $("conn").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    $("conn").textContent = "agent unreachable: " + error.message;
  }
}
$("more").onclick = async () => {
  const filter = $("filter").value;
  const page = await api("/v1/jobs?limit=100&after=" + $("more").dataset.next + (filter ? "&state=" + filter : ""));
  page.jobs.next = page.next;
  extraPages.push(page.jobs);
  refresh();
};
$("filter").onchange = () => { extraPages = []; refresh(); };

$("submit").onsubmit = async (event) => {
  event.preventDefault();
  $("submit-error").textContent = "";
  const text = $("command").value.trim();
  if (!text) return;
  const spec = $("mode").value === "shell" ? { shell: text } : { argv: text.split(/\s+/) };
  if ($("timeout").value.trim()) spec.timeout = $("timeout").value.trim();
  $("run").disabled = true;
  try {
    const job = await api("/v1/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(spec) });
    $("command").value = "";
    location.hash = job.id;
    refresh();
  } catch (error) {
    $("submit-error").textContent = error.message;
  } finally {
    $("run").disabled = false;
  }
};

function showJob(job) {
  $("noview").hidden = true;
  $("job").hidden = false;
  $("job-id").textContent = job.id + (job.name ? " · " + job.name : "");
  stateBadge($("job-state"), job);
  $("job-command").textContent = job.command;
  $("job-started").textContent = job.started_at ? new Date(job.started_at).toLocaleString() : "not yet";
  $("job-duration").textContent = duration(job);
  $("job-exit").textContent = exitText(job) || (job.final ? "none" : "");
  $("job-message").textContent = job.message || "";
  $("cancel").hidden = job.final;
}
function append(event) {
  const data = JSON.parse(event.data);
  const bytes = data.text != null ? null : Uint8Array.from(atob(data.base64), (c) => c.charCodeAt(0));
  const span = document.createElement("span");
  if (data.stream === "stderr") span.className = "stderr";
  span.textContent = data.text != null ? data.text : decoder.decode(bytes);
  const out = $("output");
  const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
  out.appendChild(span);
  if (atBottom) out.scrollTop = out.scrollHeight;
}
async function open(id) {
  if (source) { source.close(); source = null; }
  selected = id;
  document.querySelectorAll("tr.job").forEach((tr) => tr.classList.toggle("selected", tr.dataset.id === id));
  $("output").replaceChildren();
  try {
    showJob(await api("/v1/jobs/" + encodeURIComponent(id)));
  } catch (error) {
    $("noview").hidden = false; $("job").hidden = true;
    $("noview").textContent = error.message;
    return;
  }
  source = new EventSource("/v1/jobs/" + encodeURIComponent(id) + "/events");
  source.addEventListener("output", append);
  source.addEventListener("state", () => api("/v1/jobs/" + encodeURIComponent(id)).then(showJob));
  source.addEventListener("result", (event) => {
    showJob(JSON.parse(event.data));
    source.close(); source = null;
    refresh();
  });
}
$("cancel").onclick = async () => {
  if (!selected) return;
  try { await api("/v1/jobs/" + encodeURIComponent(selected), { method: "DELETE" }); }
  catch (error) { $("job-message").textContent = error.message; }
};
window.addEventListener("hashchange", () => { if (location.hash.length > 1) open(location.hash.slice(1)); });
if (location.search.includes("token=")) history.replaceState(null, "", "/" + location.hash);
if (location.hash.length > 1) open(location.hash.slice(1));
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""#
}
