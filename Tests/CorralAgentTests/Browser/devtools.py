"""Headless Chromium driven over the DevTools protocol, for the agent's
browser tests. Standard library only (a minimal WebSocket client), so it
runs on a fresh Debian machine."""
import base64, json, os, shutil, socket, struct, subprocess, sys, tempfile, time, urllib.request


class Browser:
    """One headless chromium with a fresh profile, attached to its first page.
    Every protocol event received is kept in `events`."""

    def __init__(self, extra_args=()):
        self.profile = tempfile.mkdtemp(prefix="corral-chromium-")
        self.process = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-port=0", "--user-data-dir=" + self.profile,
             "--window-size=1400,900", *extra_args, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=False)
        self.events = []
        self.next_id = 0
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.time() > deadline or self.process.poll() is not None:
                self.fail("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(open(port_file).read().split()[0])
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port))
        page = next(t for t in targets if t.get("type") == "page")
        path = page["webSocketDebuggerUrl"].split(str(port), 1)[1]

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, port, key)).encode())
        handshake = b""
        while b"\r\n\r\n" not in handshake:
            handshake += self.sock.recv(1)
        if b" 101 " not in handshake.split(b"\r\n")[0]:
            self.fail("websocket handshake refused: %r" % handshake[:100])

    def fail(self, message):
        """Prints `{"error": message}`, stops the browser, exits 1."""
        print(json.dumps({"error": message}))
        self.process.kill()
        self.process.wait()
        self._remove_profile()
        sys.exit(1)

    def close(self):
        """Stops the browser and removes its profile directory."""
        self.sock.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._remove_profile()

    def _remove_profile(self):
        # A helper process of chromium may still write a file just after the
        # main one exited: removed again, for at most 2 s.
        deadline = time.time() + 2
        while True:
            shutil.rmtree(self.profile, ignore_errors=True)
            if not os.path.exists(self.profile) or time.time() > deadline:
                return
            time.sleep(0.2)

    def _recv_exact(self, count):
        data = b""
        while len(data) < count:
            piece = self.sock.recv(count - len(data))
            if not piece:
                self.fail("devtools connection closed")
            data += piece
        return data

    def _send(self, message):
        payload = json.dumps(message).encode()
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _receive(self):
        message = b""
        while True:
            first, second = self._recv_exact(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._recv_exact(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._recv_exact(8))[0]
            message += self._recv_exact(length)
            if first & 0x80:
                return json.loads(message)

    def call(self, method, allow_error=False, **params):
        """Sends a command and returns its result (with allow_error, the
        error object instead of failing)."""
        self.next_id += 1
        self._send({"id": self.next_id, "method": method, "params": params})
        while True:
            reply = self._receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    if allow_error:
                        return {"error": reply["error"]}
                    self.fail("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def evaluate(self, expression, **params):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, **params)
        return result.get("result", {}).get("value")

    def wait_for(self, expression, what, limit=60):
        deadline = time.time() + limit
        while time.time() < deadline:
            # A page that is navigating (a form that reloads it) answers an
            # evaluation with "navigated or closed": not there yet, ask again.
            result = self.call("Runtime.evaluate", allow_error=True, expression=expression, returnByValue=True)
            if "error" in result:
                if "navigated or closed" not in str(result["error"]):
                    self.fail("Runtime.evaluate: %s" % result["error"])
                time.sleep(0.1)
                continue
            value = result.get("result", {}).get("value")
            if value:
                return value
            time.sleep(0.1)
        self.fail("timed out waiting for " + what)
