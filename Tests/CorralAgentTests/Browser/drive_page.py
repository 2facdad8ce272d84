#!/usr/bin/env python3
"""Drives the agent's page in headless Chromium over the DevTools protocol:
load the page, submit a job through the form, wait until its output and
final state appear in the job view, take a screenshot. Prints one JSON
object with what the page showed and any Content-Security-Policy violation
the browser logged (the page's script and style must run under the policy)."""
import base64, json, sys, time
from devtools import Browser

url, screenshot, command, expected = sys.argv[1:5]
browser = Browser()
browser.call("Page.enable")
browser.call("Log.enable")
browser.call("Page.navigate", url=url)
browser.wait_for("document.readyState === 'complete' && !!document.getElementById('command')", "the page")
browser.wait_for("document.getElementById('conn').textContent.startsWith('updated')", "the job table to load")
browser.evaluate("document.getElementById('command').value = %s; document.getElementById('run').click(); true" % json.dumps(command))
output = browser.wait_for("(() => { const o = document.getElementById('output').textContent;"
                          " return o.includes(%s) ? o : null })()" % json.dumps(expected), "the job's output")
state = browser.wait_for("(() => { const s = document.getElementById('job-state').textContent;"
                         " return s.includes('exited') ? s : null })()", "the job's final state")
browser.wait_for("document.querySelectorAll('#jobs tr.job').length > 0", "the job in the table")
rows = browser.evaluate("Array.from(document.querySelectorAll('#jobs tr.job')).map(r => r.innerText)")
time.sleep(0.3)
shot = browser.call("Page.captureScreenshot", format="png")
with open(screenshot, "wb") as out:
    out.write(base64.b64decode(shot["data"]))
violations = [event["params"]["entry"]["text"] for event in browser.events
              if event.get("method") == "Log.entryAdded" and "Content Security Policy" in event["params"]["entry"].get("text", "")]
print(json.dumps({"output": output, "state": state, "rows": rows, "csp_violations": violations,
                  "job": browser.evaluate("document.getElementById('job-id').textContent")}))
browser.close()
