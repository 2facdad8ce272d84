#!/usr/bin/env python3
"""Scenarios for the fleet page of `corral server` in headless Chromium over
the DevTools protocol (the agent's browser tests' client, devtools.py).
Usage: fleet_page.py URL SCREENSHOT_PREFIX SCENARIO [ARGS...]
Prints one JSON object with what the page showed (and `csp_violations`),
and saves screenshots at SCREENSHOT_PREFIX-<step>.png.

Scenarios:
  run LABEL HOSTS...   the form: a run on the hosts with label LABEL (k=v);
                       every host's state and output arriving, cancel the
                       last host, the failed filter, re-run failed
  output RUN/HOST...   each host's pane: the output shown and its notice
  submit KIND TEXT...  the form with each kind (shell, python, argv) and text, target all
  token TOKEN          the token prompt, then the page with the token
  scale RUN            load and refresh costs of a run's view (a big run)
"""
import base64, json, os, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "CorralAgentTests", "Browser"))
from devtools import Browser  # noqa: E402

url, prefix, scenario, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
browser = Browser(["--window-size=1400,900"])
browser.call("Page.enable")
browser.call("Log.enable")
browser.call("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
shots = []


def js(expression, **params):
    return browser.evaluate(expression, **params)


def wait(expression, what, limit=90):
    # An evaluation that meets a navigation (the token form reloads the
    # page) fails; it counts as not yet.
    deadline = time.time() + limit
    while time.time() < deadline:
        result = browser.call("Runtime.evaluate", allow_error=True, expression=expression, returnByValue=True)
        value = result.get("result", {}).get("value") if "error" not in result else None
        if value:
            return value
        time.sleep(0.1)
    # What the page showed then: an action's error (a refused cancel, say)
    # and every host's state, so a failure says where it stopped.
    shown = browser.call("Runtime.evaluate", allow_error=True, returnByValue=True, expression=
        "JSON.stringify({error: (document.getElementById('run-error') || {}).textContent || '',"
        " hosts: Array.from(document.querySelectorAll('#tasks tr.row')).map(r => r.dataset.host + ': ' + r.textContent)})")
    browser.fail("timed out waiting for %s; the page showed %s" % (what, shown.get("result", {}).get("value")))


def load(target):
    browser.call("Page.navigate", url=target)
    wait("document.readyState === 'complete' && !!document.getElementById('runs')", "the page")


def shoot(step):
    time.sleep(0.3)
    shot = browser.call("Page.captureScreenshot", format="png")
    path = "%s-%s.png" % (prefix, step)
    with open(path, "wb") as out:
        out.write(base64.b64decode(shot["data"]))
    shots.append(path)


def task_states():
    return js("Object.fromEntries(Array.from(document.querySelectorAll('#tasks tr.row'))"
              ".map(r => [r.dataset.host, r.querySelector('.badge').textContent]))")


def set_value(element, value, event="input"):
    js("(() => { const e = document.getElementById(%s); e.value = %s; e.dispatchEvent(new Event(%s)); return true })()"
       % (json.dumps(element), json.dumps(value), json.dumps(event)))


report = {}
if scenario == "run":
    label, hosts = args[0], args[1:]
    load(url + "#new")
    wait("document.getElementById('resolved').textContent.startsWith('Resolves to')", "the target's host count")
    report["resolved_all"] = js("document.getElementById('resolved').textContent")
    set_value("target-kind", "hosts", "change")
    wait("document.querySelectorAll('#hostpick input').length > 0", "the host list")
    js("Array.from(document.querySelectorAll('#hostpick input')).slice(0, 2).forEach(b => b.click()); true")
    report["resolved_picked"] = js("document.getElementById('resolved').textContent")
    set_value("target-kind", "labels", "change")
    set_value("target-labels", label)
    report["resolved_labels"] = js("document.getElementById('resolved').textContent")
    report["resolved_count"] = js("Number(document.getElementById('resolved').dataset.count)")
    script = "\n".join([
        'h=$(basename "$PWD")',
        'echo "start $h"',
        "printf '\\033[32mgreen %s\\033[0m\\n' \"$h\"",
        'case $h in',
        '  %s) exit 0;;' % hosts[0],
        '  %s) sleep 1; echo "failing on $h" >&2; exit 3;;' % hosts[1],
        '  *) while true; do echo "waiting $h"; sleep 0.3; done;;',
        'esac'])
    set_value("run-script", script)
    set_value("run-name", "from the page")
    set_value("run-timeout", "60s")
    shoot("form")
    js("document.getElementById('run-submit').click(); true")
    wait("location.hash.startsWith('#run/')", "the new run's view", 30)
    report["run"] = int(js("location.hash.split('/')[1]"))
    # Every host's state as it changes, and the merged output, until the
    # first two hosts are final and the last one has run for a while.
    seen = {}
    deadline = time.time() + 90
    while time.time() < deadline:
        states = task_states() or {}
        for host, state in states.items():
            if not seen.get(host) or seen[host][-1] != state:
                seen.setdefault(host, []).append(state)
        merged = js("document.getElementById('output').textContent")
        if ("exited ok" in states.get(hosts[0], "") and "exited 3" in states.get(hosts[1], "")
                and "running" in states.get(hosts[2], "") and ("[%s] waiting %s" % (hosts[2], hosts[2])) in merged
                and ("[%s] failing on %s" % (hosts[1], hosts[1])) in merged and ("[%s] green %s" % (hosts[0], hosts[0])) in merged):
            break
        time.sleep(0.1)
    report["states_seen"] = seen
    report["merged"] = js("document.getElementById('output').textContent")
    report["merged_title"] = js("document.getElementById('out-title').textContent")
    shoot("merged")
    # One host's pane: its live output while it runs, colours rendered.
    js("document.querySelector('#tasks tr.row[data-host=%s]').click(); true" % json.dumps(hosts[2]))
    wait("document.getElementById('output').dataset.host === %s && document.getElementById('output').textContent.includes('waiting')"
         % json.dumps(hosts[2]), "the running host's live output")
    first = js("document.getElementById('output').textContent")
    time.sleep(1.5)
    report["host_output_grew"] = len(js("document.getElementById('output').textContent")) > len(first)
    report["green"] = js("""(() => { const s = Array.from(document.querySelectorAll('#output span')).find(s => s.textContent.startsWith('green'));
        return s ? {text: s.textContent, color: getComputedStyle(s).color, classes: s.className} : null })()""")
    report["raw_escape"] = js("document.getElementById('output').textContent.includes('\\x1b') || document.getElementById('output').textContent.includes('[32m')")
    report["cancel_host_label"] = js("document.getElementById('cancel-host').textContent")
    shoot("host")
    js("document.getElementById('cancel-host').click(); true")
    wait("(document.querySelector('#tasks tr.row[data-host=%s] .badge') || {}).textContent === '\u2298 cancelled'" % json.dumps(hosts[2]),
         "the cancelled host")
    wait("document.getElementById('run-state').textContent === 'done'", "the run to end")
    report["final_states"] = task_states()
    report["notes"] = js("Object.fromEntries(Array.from(document.querySelectorAll('#tasks tr.row'))"
                         ".map(r => [r.dataset.host, r.children[4].textContent]))")
    report["counters"] = js("Array.from(document.querySelectorAll('#run-counters > span')).map(s => s.textContent)")
    report["counter_sum"] = js("[document.getElementById('run-counters').querySelector('.total').dataset.sum,"
                               " document.getElementById('run-counters').querySelector('.total').dataset.total]")
    report["default_order"] = js("Array.from(document.querySelectorAll('#tasks tr.row')).map(r => r.dataset.host)")
    shoot("cancelled")
    # The failed filter: server-side, exactly the failed hosts.
    set_value("tasks-filter", "errors", "change")
    wait("document.querySelectorAll('#tasks tr.row').length === 1", "the failed filter")
    time.sleep(1.2)
    report["failed_rows"] = js("Array.from(document.querySelectorAll('#tasks tr.row')).map(r => r.dataset.host)")
    report["failed_shown"] = js("document.getElementById('tasks-shown').textContent")
    shoot("failed")
    # Sorted by host: a header button.
    set_value("tasks-filter", "", "change")
    js("document.querySelector('#run-view th button[data-sort=host]').click(); true")
    wait("document.querySelectorAll('#tasks tr.row').length === %d && document.querySelector('#run-view th[data-sort=host]').getAttribute('aria-sort') === 'ascending'"
         % len(hosts), "the host order")
    time.sleep(1.2)
    report["host_order"] = js("Array.from(document.querySelectorAll('#tasks tr.row')).map(r => r.dataset.host)")
    # Re-run failed: a new run, or the server's message when it has no such endpoint.
    before = js("location.hash")
    js("document.getElementById('rerun-failed').click(); true")
    wait("document.getElementById('run-error').textContent || location.hash !== %s" % json.dumps(before), "the re-run's answer", 30)
    report["rerun_error"] = js("document.getElementById('run-error').textContent")
    report["rerun_hash"] = js("location.hash")
    if report["rerun_hash"] != before:
        wait("document.querySelectorAll('#tasks tr.row').length > 0", "the re-run's hosts")
        report["rerun_hosts"] = js("Array.from(document.querySelectorAll('#tasks tr.row')).map(r => r.dataset.host)")
    # The same script again from the form, with a 3 s deadline: the last
    # host times out, and its row says so.
    load(url + "#new")
    wait("document.getElementById('resolved').textContent.includes('a1, a2, a3')", "the form again")
    set_value("run-timeout", "3s")
    set_value("run-name", "with a deadline")
    js("document.getElementById('run-submit').click(); true")
    wait("location.hash.startsWith('#run/') && location.hash !== '#run/%d'" % report["run"], "the second run", 30)
    report["deadline_run"] = int(js("location.hash.split('/')[1]"))
    wait("document.getElementById('run-title').textContent.startsWith('Run %d \u00B7')"
         " && document.getElementById('run-state').textContent === 'done'" % report["deadline_run"], "the second run to end")
    report["deadline_states"] = task_states()
    report["deadline_notes"] = js("Object.fromEntries(Array.from(document.querySelectorAll('#tasks tr.row'))"
                                  ".map(r => [r.dataset.host, r.children[4].textContent]))")
    shoot("deadline")
    # The runs list: the runs with their progress.
    load(url + "#runs")
    wait("document.querySelectorAll('#runs tr.row').length > 0", "the runs list")
    report["runs_rows"] = js("Array.from(document.querySelectorAll('#runs tr.row')).map(r => Array.from(r.children).map(c => c.textContent))")
    report["bar_parts"] = js("Array.from(document.querySelectorAll('#runs tr.row[data-id=\"%d\"] .bar span')).map(s => [s.className, s.style.width, s.title])" % report["run"])
    shoot("runs")
    load(url + "#hosts")
    wait("document.querySelectorAll('#hosts tr').length >= %d" % len(hosts), "the hosts view")
    report["hosts_rows"] = js("Array.from(document.querySelectorAll('#hosts tr')).map(r => Array.from(r.children).map(c => c.textContent))")
    shoot("hosts")
    # 1024 px: nothing scrolls sideways; the hosts' table works from the keyboard.
    browser.call("Emulation.setDeviceMetricsOverride", width=1024, height=800, deviceScaleFactor=1, mobile=False)
    load(url + "#run/%d" % report["run"])
    wait("document.querySelectorAll('#tasks tr.row').length === %d" % len(hosts), "the run at 1024 px")
    time.sleep(1.2)
    report["widths_1024"] = js("({page_scroll: document.documentElement.scrollWidth, page_client: document.documentElement.clientWidth})")
    js("document.querySelector('#tasks tr.row').focus(); true")
    first = js("document.activeElement.dataset.host")
    for kind in ("rawKeyDown", "keyUp"):
        browser.call("Input.dispatchKeyEvent", type=kind, key="ArrowDown", code="ArrowDown", windowsVirtualKeyCode=40)
    second = js("document.activeElement.dataset.host")
    for kind in ("rawKeyDown", "keyUp"):
        browser.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13)
    wait("location.hash === %s" % json.dumps("#run/%d/%s" % (report["run"], second)), "Enter to open the focused host")
    report["keyboard"] = [first, second, wait("(() => { const t = document.getElementById('out-title').textContent;"
                                               " return t.startsWith('Output of') ? t : null })()", "the host's pane")]
    shoot("narrow")
elif scenario == "output":
    # Each RUN/HOST pane: what it shows and the notice it gives.
    report["panes"] = []
    for pair in args:
        run, host = pair.split("/")
        load(url + "#run/%s/%s" % (run, host))
        wait("document.getElementById('output').dataset.host === %s && document.getElementById('run-title').textContent.startsWith('Run %s ')"
             % (json.dumps(host), run), "the pane of %s" % pair)
        notice = wait("(() => { const n = document.getElementById('out-notice'); return n.hidden ? null : n.textContent })()",
                      "the notice of %s" % pair)
        text = js("document.getElementById('output').textContent")
        report["panes"].append({"notice": notice, "length": len(text), "start": text[:40], "end": text[-40:]})
        shoot("pane-%s" % run)
elif scenario == "submit":
    # The form with each KIND TEXT pair, target all; the run's id and its
    # merged output (an argv line that does not split is refused on the page).
    report["runs"] = []
    for kind, text in zip(args[0::2], args[1::2]):
        load(url + "#new")
        wait("document.getElementById('resolved').textContent.startsWith('Resolves to')", "the form")
        set_value("run-kind", kind, "change")
        set_value("run-script", text)
        before = js("location.hash")
        js("document.getElementById('run-submit').click(); true")
        answer = wait("document.getElementById('run-form-error').textContent || (location.hash !== %s && location.hash)" % json.dumps(before),
                      "the form's answer", 30)
        if not answer.startswith("#run/"):
            report["runs"].append({"error": answer})
            continue
        run = int(answer.split("/")[1])
        wait("document.getElementById('run-title').textContent.startsWith('Run %d \u00B7')"
             " && document.getElementById('run-state').textContent === 'done'"
             " && document.getElementById('output').textContent.endsWith('\\n')" % run, "run %d to end with its output" % run)
        time.sleep(1.5)
        report["runs"].append({"run": run, "output": js("document.getElementById('output').textContent")})
        shoot("submit-%s" % kind)
elif scenario == "token":
    load(url)
    wait("!document.getElementById('login').hidden", "the token prompt")
    report["prompt"] = js("document.getElementById('login').textContent")
    report["raw_json_shown"] = js("document.body.innerText.includes('\"error\"')")
    report["main_hidden"] = js("document.getElementById('main').hidden")
    shoot("prompt")
    js("document.getElementById('token').value = %s; document.getElementById('login-form').requestSubmit(); true" % json.dumps(args[0]))
    wait("document.readyState === 'complete' && !!document.getElementById('runs') && document.getElementById('login').hidden"
         " && document.getElementById('conn').textContent.startsWith('updated')", "the page after the token")
    report["rows"] = js("document.querySelectorAll('#runs tr.row').length")
    report["location"] = js("location.href")
    shoot("after")
elif scenario == "scale":
    run = int(args[0])
    started = time.time()
    load(url + "#run/%d" % run)
    wait("document.querySelectorAll('#tasks tr.row').length === 200 && !!document.querySelector('#run-counters .total')",
         "the first page of hosts")
    report["first_view_ms"] = (time.time() - started) * 1000
    report["counters"] = js("Array.from(document.querySelectorAll('#run-counters > span')).map(s => s.textContent)")
    report["counter_sum"] = js("[document.querySelector('#run-counters .total').dataset.sum, document.querySelector('#run-counters .total').dataset.total]")
    report["shown"] = js("document.getElementById('tasks-shown').textContent")
    report["first_rows"] = js("Array.from(document.querySelectorAll('#tasks tr.row')).slice(0, 3).map(r => r.innerText)")
    shoot("view")

    def timed(expression="refreshRun()"):
        return js("""(async () => { while (runBusy) await new Promise(r => setTimeout(r, 5));
            const t = performance.now(); await %s; return performance.now() - t })()""" % expression, awaitPromise=True)
    report["refresh_ms"] = sorted(timed() for _ in range(7))
    set_value("tasks-filter", "errors", "change")
    wait("document.querySelectorAll('#tasks tr.row').length > 0 && document.getElementById('tasks-shown').textContent.includes('of 200')",
         "the failed filter")
    report["failed_shown"] = js("document.getElementById('tasks-shown').textContent")
    report["failed_refresh_ms"] = sorted(timed() for _ in range(5))
    set_value("tasks-filter", "", "change")
    js("document.querySelector('#run-view th button[data-sort=duration]').click(); true")
    wait("document.querySelector('#run-view th[data-sort=duration]').getAttribute('aria-sort') === 'ascending'"
         " && document.querySelectorAll('#tasks tr.row').length === 200", "the duration order")
    time.sleep(1.2)
    report["sorted_refresh_ms"] = sorted(timed() for _ in range(5))
    js("document.getElementById('tasks-next').click(); true")
    wait("document.getElementById('tasks-shown').textContent.startsWith('page 2')", "page 2")
    report["page2_shown"] = js("document.getElementById('tasks-shown').textContent")
    # What the page reads per refresh, against the run's full view.
    report["sizes"] = js("""(async () => {
        const t0 = performance.now(); const page = await (await fetch('/v1/runs/%d/tasks?sort=state&limit=200')).text();
        const t1 = performance.now(); const full = await (await fetch('/v1/runs/%d')).text(); const t2 = performance.now();
        return {tasks_page_bytes: page.length, tasks_page_ms: t1 - t0, full_view_bytes: full.length, full_view_ms: t2 - t1};
    })()""" % (run, run), awaitPromise=True)
    report["dom_rows"] = js("document.querySelectorAll('#tasks tr.row').length")
    shoot("page2")
else:
    browser.fail("unknown scenario " + scenario)

report["screenshots"] = shots
report["csp_violations"] = [event["params"]["entry"]["text"] for event in browser.events
                            if event.get("method") == "Log.entryAdded"
                            and "Content Security Policy" in event["params"]["entry"].get("text", "")]
report["console_errors"] = [event["params"]["entry"]["text"] for event in browser.events
                            if event.get("method") == "Log.entryAdded" and event["params"]["entry"].get("level") == "error"
                            and "401" not in event["params"]["entry"].get("text", "")]
print(json.dumps(report))
browser.close()
