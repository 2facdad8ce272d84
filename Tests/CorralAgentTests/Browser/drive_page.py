#!/usr/bin/env python3
"""Drives the agent's page in headless Chromium over the DevTools protocol:
load the page, submit a job through the form, wait until its output and
final state appear in the job view, take a screenshot. Prints one JSON
object with what the page showed. Standard library only (a minimal
WebSocket client), so it runs on a fresh Debian machine."""
import base64, json, os, socket, struct, subprocess, sys, tempfile, time, urllib.request

url, screenshot, command, expected = sys.argv[1:5]
profile = tempfile.mkdtemp(prefix="corral-chromium-")
browser = subprocess.Popen(
    ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
     "--no-first-run", "--remote-debugging-port=0", "--user-data-dir=" + profile,
     "--window-size=1400,900", "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=False)

def fail(message):
    print(json.dumps({"error": message}))
    browser.kill()
    sys.exit(1)

port_file = os.path.join(profile, "DevToolsActivePort")
deadline = time.time() + 60
while not os.path.exists(port_file) or not open(port_file).read().strip():
    if time.time() > deadline or browser.poll() is not None:
        fail("chromium did not open its DevTools port")
    time.sleep(0.1)
port = int(open(port_file).read().split()[0])
targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port))
page = next(t for t in targets if t.get("type") == "page")
path = page["webSocketDebuggerUrl"].split(str(port), 1)[1]

sock = socket.create_connection(("127.0.0.1", port), timeout=30)
key = base64.b64encode(os.urandom(16)).decode()
sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, port, key)).encode())
handshake = b""
while b"\r\n\r\n" not in handshake:
    handshake += sock.recv(1)
if b" 101 " not in handshake.split(b"\r\n")[0]:
    fail("websocket handshake refused: %r" % handshake[:100])

def recv_exact(count):
    data = b""
    while len(data) < count:
        piece = sock.recv(count - len(data))
        if not piece:
            fail("devtools connection closed")
        data += piece
    return data

def send(message):
    payload = json.dumps(message).encode()
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    elif len(payload) < 65536:
        header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
    else:
        header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
    mask = os.urandom(4)
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

def receive():
    message = b""
    while True:
        first, second = recv_exact(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack(">H", recv_exact(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", recv_exact(8))[0]
        message += recv_exact(length)
        if first & 0x80:
            return json.loads(message)

next_id = [0]
def call(method, **params):
    next_id[0] += 1
    send({"id": next_id[0], "method": method, "params": params})
    while True:
        reply = receive()
        if reply.get("id") == next_id[0]:
            if "error" in reply:
                fail("%s: %s" % (method, reply["error"]))
            return reply.get("result", {})

def evaluate(expression):
    result = call("Runtime.evaluate", expression=expression, returnByValue=True)
    return result.get("result", {}).get("value")

def wait_for(expression, what, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        value = evaluate(expression)
        if value:
            return value
        time.sleep(0.1)
    fail("timed out waiting for " + what)

call("Page.enable")
call("Page.navigate", url=url)
wait_for("document.readyState === 'complete' && !!document.getElementById('command')", "the page")
wait_for("document.getElementById('conn').textContent.startsWith('updated')", "the job table to load")
evaluate("document.getElementById('command').value = %s; document.getElementById('run').click(); true" % json.dumps(command))
output = wait_for("(() => { const o = document.getElementById('output').textContent;"
                  " return o.includes(%s) ? o : null })()" % json.dumps(expected), "the job's output")
state = wait_for("(() => { const s = document.getElementById('job-state').textContent;"
                 " return s === 'exited' ? s : null })()", "the job's final state")
wait_for("document.querySelectorAll('#jobs tr.job').length > 0", "the job in the table")
rows = evaluate("Array.from(document.querySelectorAll('#jobs tr.job')).map(r => r.innerText)")
time.sleep(0.3)
shot = call("Page.captureScreenshot", format="png")
with open(screenshot, "wb") as out:
    out.write(base64.b64decode(shot["data"]))
print(json.dumps({"output": output, "state": state, "rows": rows, "job": evaluate("document.getElementById('job-id').textContent")}))
sock.close()
browser.terminate()
try:
    browser.wait(10)
except subprocess.TimeoutExpired:
    browser.kill()
