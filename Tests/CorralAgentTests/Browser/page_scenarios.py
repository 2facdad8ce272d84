#!/usr/bin/env python3
"""Scenarios for the agent's page in headless Chromium over the DevTools
protocol. Usage: page_scenarios.py URL SCREENSHOT SCENARIO [ARGS...]
Prints one JSON object with what the page showed (and `csp_violations`),
and saves a screenshot at SCREENSHOT (PNG).

Scenarios:
  truncation JOB          the job view of a job whose output overflowed
  note JOB                the note of a final job
  filter STATE [TEXT]     the table with the state filter (and search) set
  paging NEW              "Load older" to the end while NEW jobs are submitted
  ansi JOB                the computed colours of the output's spans
  download JOB            the binary notice and the bytes the download link gives
  layout                  width, keyboard navigation of the table (1024 px)
  token TOKEN             the token prompt, then the page with the token
  banner PID              SIGTERM to the agent: the shutting-down, then unreachable banner
  argv LINE               the form in argv mode (quoting), then Re-run
  live JOB                a running job's duration ticks
  scale                   load and refresh costs with a big journal
"""
import base64, json, os, signal, sys, time
from devtools import Browser

url, screenshot, scenario, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
width = 1024 if scenario == "layout" else 1400
browser = Browser(["--window-size=%d,900" % width])
browser.call("Page.enable")
browser.call("Log.enable")
browser.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)


def js(expression, **params):
    return browser.evaluate(expression, **params)


def wait(expression, what, limit=60):
    return browser.wait_for(expression, what, limit)


def load(target):
    browser.call("Page.navigate", url=target)
    wait("document.readyState === 'complete' && !!document.getElementById('jobs')", "the page")


def loaded_table():
    wait("document.getElementById('conn').textContent.startsWith('updated')", "the job table to load")


def open_job(job):
    load(url + "#" + job)
    loaded_table()
    wait("document.getElementById('output').dataset.done === %s" % json.dumps(job), "job %s's output and result" % job, 120)


def row_ids():
    return js("Array.from(document.querySelectorAll('#jobs tr.job')).map(r => r.dataset.id)")


def key(name, code, key_code):
    for kind in ("rawKeyDown", "keyUp"):
        browser.call("Input.dispatchKeyEvent", type=kind, key=name, code=code, windowsVirtualKeyCode=key_code)


def shoot():
    time.sleep(0.3)
    shot = browser.call("Page.captureScreenshot", format="png")
    with open(screenshot, "wb") as out:
        out.write(base64.b64decode(shot["data"]))


report = {}
if scenario == "truncation":
    open_job(args[0])
    js("(() => { const o = document.getElementById('output'); o.scrollTop = o.scrollHeight; return true })()")
    report = js("""(() => {
        const o = document.getElementById('output');
        const gaps = Array.from(o.querySelectorAll('.gap')).map(g => g.textContent);
        const text = o.textContent;
        return {gaps, length: text.length, start: text.slice(0, 40), end: text.slice(-60),
                note: Array.from(document.querySelectorAll('#job-note li')).map(li => li.textContent)};
    })()""")
elif scenario == "note":
    open_job(args[0])
    report = js("({note: Array.from(document.querySelectorAll('#job-note li')).map(li => li.textContent),"
                " state: document.getElementById('job-state').textContent,"
                " exit: document.getElementById('job-exit').textContent,"
                " timeout: document.getElementById('job-timeout').textContent})")
elif scenario == "filter":
    load(url)
    loaded_table()
    state = args[0]
    text = args[1] if len(args) > 1 else ""
    js("(() => { const f = document.getElementById('filter'); f.value = %s;"
       " f.dispatchEvent(new Event('change')); const s = document.getElementById('search'); s.value = %s;"
       " s.dispatchEvent(new Event('input')); return true })()" % (json.dumps(state), json.dumps(text)))
    # Settled: two list answers came after the change (the debounce is 250 ms).
    time.sleep(0.5)
    first = js("document.getElementById('conn').textContent")
    wait("document.getElementById('conn').textContent !== %s" % json.dumps(first), "the filtered list")
    time.sleep(1.2)
    report = {"ids": row_ids(), "options": js("Array.from(document.querySelectorAll('#filter option')).map(o => o.value)"),
              "empty": js("document.getElementById('nojobs').hidden ? null : document.getElementById('nojobs').textContent"),
              "headers": js("Array.from(document.querySelectorAll('thead th')).map(th => th.textContent)"),
              "names": js("Array.from(document.querySelectorAll('#jobs tr.job td:nth-child(2)')).map(td => td.textContent)"),
              "widths": js("""(() => { const w = document.querySelector('.tablewrap');
                  return {page_scroll: document.documentElement.scrollWidth, page_client: document.documentElement.clientWidth,
                          table_scroll: w.scrollWidth, table_client: w.clientWidth}; })()""")}
elif scenario == "paging":
    new = int(args[0])
    load(url)
    loaded_table()
    wait("document.querySelectorAll('#jobs tr.job').length === 100", "the first page")
    steps = []
    submitted = []
    clicks = 0
    while True:
        ids = row_ids()
        steps.append({"rows": len(ids), "duplicates": len(ids) - len(set(ids)), "first": ids[0], "last": ids[-1],
                      # contiguous: every id between the newest and the oldest shown is there
                      "gaps": (int(ids[0][1:]) - int(ids[-1][1:]) + 1) - len(set(ids))})
        if js("document.getElementById('more').hidden"):
            break
        if clicks > 10:
            break
        before = len(ids)
        js("document.getElementById('more').click(); true")
        clicks += 1
        if clicks == 1:
            # New jobs arrive while paging.
            for _ in range(new):
                made = js("fetch('/v1/jobs', {method: 'POST', headers: {'Content-Type': 'application/json'},"
                          " body: JSON.stringify({argv: ['true'], id: 'arrived-while-paging'})}).then(r => r.json())",
                          awaitPromise=True)
                submitted.append(made.get("id"))
        # Done: more rows, or none older left (the last page may be empty).
        wait("!document.getElementById('more').disabled && (document.querySelectorAll('#jobs tr.job').length > %d"
             " || document.getElementById('more').hidden)" % before, "older jobs after click %d" % clicks)
        time.sleep(0.3)
    time.sleep(1.5)  # a refresh or two after the last page
    final = row_ids()
    report = {"steps": steps, "final": final, "submitted": submitted, "clicks": clicks,
              "more_hidden": js("document.getElementById('more').hidden")}
elif scenario == "ansi":
    open_job(args[0])
    report = js("""(() => {
        const found = {};
        for (const span of document.querySelectorAll('#output span')) {
            const text = span.textContent.trim();
            if (!text || found[text]) continue;
            const style = getComputedStyle(span);
            found[text] = {color: style.color, background: style.backgroundColor, weight: style.fontWeight,
                           decoration: style.textDecorationLine, classes: span.className};
        }
        const text = document.getElementById('output').textContent;
        return {spans: found, raw_escape: text.includes('\\x1b') || text.includes('[31m') || text.includes(']0;'), text};
    })()""")
elif scenario == "download":
    open_job(args[0])
    wait("!document.getElementById('binary').hidden", "the binary notice")
    report = js("""(async () => {
        const link = document.getElementById('download-stdout');
        const response = await fetch(link.href);
        const bytes = new Uint8Array(await response.arrayBuffer());
        let binary = '';
        for (let i = 0; i < bytes.length; i += 4096) binary += String.fromCharCode(...bytes.subarray(i, i + 4096));
        return {notice: document.getElementById('binary').textContent, href: link.getAttribute('href'),
                download_attribute: link.hasAttribute('download'), status: response.status,
                type: response.headers.get('content-type'), disposition: response.headers.get('content-disposition'),
                base64: btoa(binary), shown: document.getElementById('output').textContent.length};
    })()""", awaitPromise=True)
elif scenario == "layout":
    load(url)
    loaded_table()
    wait("document.querySelectorAll('#jobs tr.job').length >= 3", "the rows")
    report["widths"] = js("""(() => { const w = document.querySelector('.tablewrap');
        return {page_scroll: document.documentElement.scrollWidth, page_client: document.documentElement.clientWidth,
                table_scroll: w.scrollWidth, table_client: w.clientWidth, inner: innerWidth}; })()""")
    # Keyboard: Tab reaches the table's one tabbable row; arrows move; Enter opens.
    js("document.querySelector('#jobs tr.job[tabindex=\"0\"]').focus(); true")
    first = js("document.activeElement.dataset.id")
    key("ArrowDown", "ArrowDown", 40)
    key("ArrowDown", "ArrowDown", 40)
    second = js("document.activeElement.dataset.id")
    key("Enter", "Enter", 13)
    wait("location.hash === '#' + %s" % json.dumps(second), "Enter to open the focused row")
    wait("document.getElementById('output').dataset.done === %s" % json.dumps(second), "the opened job")
    report.update({"first_focused": first, "after_arrows": second, "hash": js("location.hash"),
                   "tabbable_rows": js("document.querySelectorAll('#jobs tr.job[tabindex=\"0\"]').length"),
                   "badges": js("Array.from(document.querySelectorAll('#jobs .badge')).map(b => b.textContent)"),
                   "header": js("document.getElementById('hostinfo').textContent")})
    report["widths_after"] = js("({page_scroll: document.documentElement.scrollWidth, page_client: document.documentElement.clientWidth})")
elif scenario == "token":
    load(url)
    wait("!document.getElementById('login').hidden", "the token prompt")
    report["prompt"] = js("document.getElementById('login').innerText")
    report["raw_json_shown"] = js("document.body.innerText.includes('\"error\"')")
    js("document.getElementById('token').value = %s; document.getElementById('login-form').requestSubmit(); true" % json.dumps(args[0]))
    wait("document.readyState === 'complete' && !!document.getElementById('jobs') && document.getElementById('login').hidden"
         " && document.getElementById('conn').textContent.startsWith('updated')", "the page after the token")
    report["rows"] = row_ids()
    report["location"] = js("location.href")
elif scenario == "argv":
    # The form in argv mode: an unclosed quote is refused on the page; a
    # quoted line is split as a shell would; then Re-run submits it again.
    load(url)
    loaded_table()
    js("document.getElementById('mode').value = 'argv'; true")
    js("document.getElementById('command').value = %s; document.getElementById('run').click(); true" % json.dumps("echo 'unclosed"))
    report["unclosed"] = wait("document.getElementById('submit-error').textContent || null", "the quoting error")
    js("document.getElementById('command').value = %s; document.getElementById('run').click(); true" % json.dumps(args[0]))
    wait("location.hash === '#j1' && document.getElementById('output').dataset.done === 'j1'", "the argv job")
    report["output"] = js("document.getElementById('output').textContent")
    js("document.getElementById('rerun').click(); true")
    wait("location.hash === '#j2' && document.getElementById('output').dataset.done === 'j2'", "the re-run job")
    report["rerun_output"] = js("document.getElementById('output').textContent")
elif scenario == "live":
    # A running job's duration ticks in the view without a reload.
    open_job_url = url + "#" + args[0]
    load(open_job_url)
    loaded_table()
    wait("document.getElementById('job-duration').textContent.endsWith('…')", "a running duration")
    first = js("document.getElementById('job-duration').textContent")
    time.sleep(2.5)
    report = {"first": first, "later": js("document.getElementById('job-duration').textContent"),
              "cut": wait("document.getElementById('cut').hidden ? null : document.getElementById('cut').textContent", "the cut notice"),
              "row": js("document.querySelector('#jobs tr.job[data-id=%s] td:nth-child(4)').textContent" % json.dumps(args[0]))}
elif scenario == "scale":
    # Costs with a big journal: the first table, a refresh of the newest
    # page, and of a 400-row window after three "Load older".
    started = time.time()
    load(url)
    loaded_table()
    wait("document.querySelectorAll('#jobs tr.job').length === 100", "the first page")
    report["first_table_ms"] = (time.time() - started) * 1000

    def timed_refresh():
        return js("""(async () => { while (refreshing) await new Promise(r => setTimeout(r, 5));
            const t = performance.now(); await refresh(); return performance.now() - t })()""", awaitPromise=True)
    report["refresh_ms"] = sorted(timed_refresh() for _ in range(5))
    for clicks in range(3):
        rows = len(row_ids())
        js("document.getElementById('more').click(); true")
        wait("!document.getElementById('more').disabled && document.querySelectorAll('#jobs tr.job').length > %d" % rows,
             "older jobs")
    report["window_rows"] = len(row_ids())
    report["window_refresh_ms"] = sorted(timed_refresh() for _ in range(5))
    js("document.getElementById('filter').value = 'failed'; document.getElementById('filter').dispatchEvent(new Event('change')); true")
    wait("document.querySelectorAll('#jobs tr.job').length === 100", "the failed filter")
    report["failed_refresh_ms"] = sorted(timed_refresh() for _ in range(5))
elif scenario == "banner":
    load(url)
    loaded_table()
    report["before"] = js("document.getElementById('banner').hidden")
    os.kill(int(args[0]), signal.SIGTERM)
    report["shutting_down"] = wait("(() => { const b = document.getElementById('banner');"
                                   " return !b.hidden && b.textContent.includes('shutting down') ? b.textContent : null })()",
                                   "the shutting-down banner")
    shoot()
    report["unreachable"] = wait("(() => { const b = document.getElementById('banner');"
                                 " return !b.hidden && b.textContent.includes('unreachable') ? b.textContent : null })()",
                                 "the unreachable banner")
else:
    browser.fail("unknown scenario " + scenario)

if scenario != "banner":
    shoot()
report["csp_violations"] = [event["params"]["entry"]["text"] for event in browser.events
                            if event.get("method") == "Log.entryAdded"
                            and "Content Security Policy" in event["params"]["entry"].get("text", "")]
print(json.dumps(report))
browser.close()
