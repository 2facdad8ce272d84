#!/usr/bin/env python3
"""Attacks on a loopback agent from web pages, in headless Chromium.

1. DNS rebinding: chromium resolves attacker names to 127.0.0.1
   (--host-resolver-rules), loads http://NAME:PORT/ and, from that page's
   origin, POSTs a job and lists jobs with fetch.
2. Framing: a page on another origin (a small server here) iframes the
   agent's page, next to a control frame from its own origin; each frame's
   title and content are read in the frame's own context over DevTools.

Usage: probe_attacks.py AGENT_PORT NAME... Prints one JSON object."""
import http.server, json, sys, threading, time
from devtools import Browser

agent_port = int(sys.argv[1])
names = sys.argv[2:]
rules = ",".join("MAP %s 127.0.0.1" % name for name in names)
browser = Browser(["--host-resolver-rules=" + rules])
browser.call("Page.enable")
browser.call("Runtime.enable")
browser.call("Log.enable")

def load(url):
    browser.events.clear()
    browser.call("Page.navigate", url=url)
    browser.wait_for("document.readyState === 'complete'", url)

rebinding = {}
for name in names:
    load("http://%s:%d/" % (name, agent_port))
    rebinding[name] = {
        "location": browser.evaluate("location.href"),
        "document": browser.evaluate("document.body ? document.body.innerText : ''"),
        "post": browser.evaluate(
            "fetch('/v1/jobs', {method: 'POST', headers: {'Content-Type': 'application/json'},"
            " body: JSON.stringify({shell: 'echo rebound from %s'})})"
            ".then(r => r.text().then(t => ({status: r.status, body: t})))"
            ".catch(e => ({status: 0, body: String(e)}))" % name, awaitPromise=True),
        "list": browser.evaluate(
            "fetch('/v1/jobs').then(r => r.text().then(t => ({status: r.status, body: t})))"
            ".catch(e => ({status: 0, body: String(e)}))", awaitPromise=True),
    }

agent_url = "http://127.0.0.1:%d/" % agent_port
class Attacker(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/control":
            body = b"<!doctype html><title>control frame</title><p id='command'>framed fine</p>"
        else:
            body = ("<!doctype html><title>attacker</title>"
                    "<iframe name='agent' src='%s' width='600' height='400'></iframe>"
                    "<iframe name='control' src='/control'></iframe>" % agent_url).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
threading.Thread(target=server.serve_forever, daemon=True).start()
load("http://127.0.0.1:%d/" % server.server_address[1])

def blocked_by_chromium():
    return any("frame-ancestors" in event["params"]["entry"].get("text", "") for event in browser.events
               if event.get("method") == "Log.entryAdded")

# Settled once the control frame has loaded and the agent's frame either
# was refused (Chromium logs frame-ancestors) or shows the agent's page (a
# failure, read below). Bounded: a frame that does neither is read as is.
deadline = time.time() + 30
while time.time() < deadline:
    state = browser.evaluate(
        "(() => { const f = n => document.querySelector(`iframe[name=${n}]`);"
        " let agentTitle = null; try { agentTitle = f('agent').contentDocument.title } catch (e) {}"
        " return {control: f('control').contentDocument ? f('control').contentDocument.title : null, agent: agentTitle} })()")
    if state and state.get("control") == "control frame" and (blocked_by_chromium() or state.get("agent") == "Corral agent"):
        break
    time.sleep(0.1)

def frames(tree):
    for child in tree.get("childFrames", []):
        yield child["frame"]
        yield from frames(child)

framing = {}
for frame in frames(browser.call("Page.getFrameTree")["frameTree"]):
    world = browser.call("Page.createIsolatedWorld", allow_error=True, frameId=frame["id"], worldName="probe")
    seen = None
    if "executionContextId" in world:
        seen = browser.evaluate("({title: document.title, origin: location.origin,"
                                " agentForm: !!document.getElementById('run'),"
                                " text: document.body ? document.body.innerText.slice(0, 200) : ''})",
                                contextId=world["executionContextId"])
    framing[frame.get("name", frame["id"])] = {
        "url": frame.get("url"), "unreachableUrl": frame.get("unreachableUrl"), "seen": seen,
        "world_error": world.get("error"),
    }
log = [event["params"]["entry"]["text"] for event in browser.events
       if event.get("method") == "Log.entryAdded" and "frame" in event["params"]["entry"].get("text", "")]
print(json.dumps({"rebinding": rebinding, "framing": framing, "log": log}))
server.shutdown()
browser.close()
