"""Helpers of the anomalydino serve tests (Python 3 standard library only).

Every server is started on 127.0.0.1 with --listen 127.0.0.1:0; the bound port is read from
its first stdout line. Every wait is bounded, every server is stopped (SIGTERM, then SIGKILL
and a failure) when the test ends.
"""
import base64
import http.client
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

BIN = os.environ.get("AD_BIN", "anomalydino")
DATA = os.environ.get("AD_TEST_DATA", "tests/data")
TMP_ROOT = os.environ.get("AD_TMP", "/tmp")
WEIGHTS = os.path.join(DATA, "dinov2", "tiny.safetensors")
WEIGHTS_OTHER = os.path.join(DATA, "dinov2", "tiny_reg.safetensors")
# ASan/TSan builds are several times slower: scale the generous time bounds
SLOW = 4.0 if os.environ.get("AD_SANITIZED") else 1.0

_failures = []


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        _failures.append(what)
    sys.stdout.flush()
    return cond


def finish():
    if _failures:
        print("%d check(s) failed" % len(_failures))
        sys.exit(1)
    print("all checks passed")
    sys.exit(0)


def tmpdir(name):
    d = os.path.join(TMP_ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def png_bytes(w, h, seed, defect=False, depth=8):
    """An RGB PNG: a smooth pattern with noise, optionally a bright square."""
    rnd = random.Random(seed)
    noise = bytes(rnd.randrange(24) for _ in range(w * 3 + 7))
    rows = []
    for y in range(h):
        base = bytes(((x * 3 + y * 2 + seed * 17) & 0xFF) for x in range(w))
        row = bytearray(3 * w)
        row[0::3] = base
        row[1::3] = bytes((v * 7) & 0xFF for v in base)
        row[2::3] = bytes(255 - v for v in base)
        off = (y * 13) % 7
        row = bytes((a + b) & 0xFF for a, b in zip(row, noise[off:off + 3 * w]))
        if defect and abs(y - h // 2) < h // 8:
            x0, x1 = w // 2 - w // 8, w // 2 + w // 8
            row = row[:3 * x0] + b"\xff\x00\x00" * (x1 - x0) + row[3 * x1:]
        rows.append(b"\x00" + row)
    return _png(w, h, 2, b"".join(rows))


def _chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def _png(w, h, ctype, raw):
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))


def png_bomb(side):
    """A valid grey PNG of side x side zeros: tiny on the wire, side^2 bytes once decoded."""
    co = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    parts = [co.compress(row) for _ in range(side)]
    parts.append(co.flush())
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def run(args, timeout=120):
    """Runs the tool; returns (exit code, stdout, stderr)."""
    p = subprocess.run([BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout * SLOW)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def fit(out, refs, extra=(), weights=WEIGHTS):
    rc, so, se = run(["fit", "-m", weights, "-o", out, "--threads", "1"] + list(extra) + list(refs))
    if rc != 0:
        raise RuntimeError("fit failed: " + se)
    return out


class Server:
    def __init__(self, args, name="serve", key=None, env=None):
        self.key = key
        self.log_path = os.path.join(TMP_ROOT, name + ".stderr")
        self.log = open(self.log_path, "wb")
        e = dict(os.environ)
        e.setdefault("OMP_WAIT_POLICY", "passive")
        if env:
            e.update(env)
        self.proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.log, env=e)
        self.port = None
        line = self._readline(20 * SLOW)
        if not line.startswith("anomalydino serve: listening on http://127.0.0.1:"):
            self.stop(expect_rc=None)
            raise RuntimeError("no listening line (got %r); stderr: %s" % (line, self.stderr()))
        self.port = int(line.rsplit(":", 1)[1])

    def _readline(self, timeout):
        end = time.time() + timeout
        buf = b""
        while time.time() < end and not buf.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                c = os.read(self.proc.stdout.fileno(), 1)
                if not c:
                    break
                buf += c
        return buf.decode(errors="replace").strip()

    def stderr(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout=30):
        end = time.time() + timeout * SLOW
        while time.time() < end:
            if self.proc.poll() is not None:
                return False
            try:
                st, _, _ = self.request("GET", "/health/ready", auth=False, timeout=2)
                if st == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)

    def headers(self, auth=True, extra=None):
        h = {}
        if auth and self.key:
            h["Authorization"] = "Bearer " + self.key
        if extra:
            h.update(extra)
        return h

    def request(self, method, path, body=None, headers=None, auth=True, timeout=30):
        """(status, headers dict (lower-case names), body bytes) on a fresh connection."""
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=self.headers(auth, headers))
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None, auth=True, timeout=30):
        st, h, data = self.request(method, path, body, headers, auth, timeout)
        try:
            doc = json.loads(data.decode()) if data else None
        except ValueError:
            doc = None
        return st, h, doc

    def predict(self, bank, img, query="", ctype="image/png", headers=None, timeout=30):
        hd = {"Content-Type": ctype}
        if headers:
            hd.update(headers)
        return self.json("POST", "/v1/banks/%s/predict%s" % (bank, query), img, hd, timeout=timeout)

    def metric(self, name_and_labels):
        """Value of one metric line ('name{labels}'), or None."""
        st, _, data = self.request("GET", "/metrics")
        for line in data.decode().splitlines():
            if line.startswith(name_and_labels + " "):
                return float(line.split()[-1])
        return None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, expect_rc=0, timeout=30):
        """SIGTERM and wait (bounded); returns the exit code (SIGKILL after the bound: None)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            rc = None
        self.proc.stdout.close()
        self.log.close()
        if expect_rc is not None:
            check(rc == expect_rc, "server exits %s after SIGTERM (got %s)" % (expect_rc, rc))
        return rc


def multipart(field, filename, data, ctype="image/png", boundary="----adtestboundary"):
    body = ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
            "Content-Type: %s\r\n\r\n" % (boundary, field, filename, ctype)).encode()
    body += data + ("\r\n--%s--\r\n" % boundary).encode()
    return body, "multipart/form-data; boundary=" + boundary


def raw_exchange(port, data, timeout=10, read_limit=1 << 20):
    """Sends bytes on a fresh socket and reads until close or timeout: (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        end = time.time() + timeout
        while time.time() < end and len(out) < read_limit:
            try:
                d = s.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not d:
                return out, True
            out += d
        return out, False
    finally:
        s.close()


def push_and_read(port, head, chunks, timeout=10):
    """Sends `head` then the byte strings of `chunks` (an iterable, maybe long) from a thread
    while reading the answer, as a client that keeps sending would. Returns (answer bytes,
    bytes of body sent, seconds until the answer or the close). Sending stops at the first
    error (the server closed or reset the connection)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent = [0]
    stop = threading.Event()

    def sender():
        try:
            s.sendall(head)
            for c in chunks:
                if stop.is_set():
                    break
                s.sendall(c)
                sent[0] += len(c)
        except OSError:
            pass

    t0 = time.time()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    out = b""
    end = t0 + timeout
    try:
        while time.time() < end:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not d:
                break
            out += d
            if b"\r\n\r\n" in out:
                hdr = out.split(b"\r\n\r\n", 1)
                cl = [l for l in hdr[0].split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(hdr[1]) >= int(cl[0].split(b":")[1]):
                    break
    finally:
        dt = time.time() - t0
        stop.set()
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        th.join(5)
    return out, sent[0], dt


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def b64(data):
    return base64.b64encode(data).decode()
