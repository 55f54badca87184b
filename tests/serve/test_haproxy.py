#!/usr/bin/python3
"""Two `anomalydino serve` replicas behind HAProxy, on loopback, under a bounded wrk load.

HAProxy health-checks /health/ready and retries failed requests on the other replica. During
the load one replica is killed with SIGKILL and restarted, and the bank of the other is
reloaded. No request may fail: wrk must count only 200 answers and no socket error.

Environment: AD_BIN (the anomalydino binary), AD_TEST_DATA (tests/data), AD_TMP (scratch).
Prints 'N passed, M failed' last; exit 1 on any failure. Every wait is bounded."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ["AD_BIN"]
DATA = os.environ["AD_TEST_DATA"]
SAMPLES = os.path.join(DATA, "..", "..", "samples")
MODEL = os.path.join(DATA, "dinov2", "tiny.safetensors")
KEY = "haproxy-test-key-0123456789"
LOAD_S = 12

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + what, flush=True)
    else:
        failed += 1
        print("FAIL " + what, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=2):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + KEY})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def post(url, timeout=10):
    req = urllib.request.Request(url, data=b"", method="POST",
                                 headers={"Authorization": "Bearer " + KEY})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(port, limit_s=30):
    end = time.time() + limit_s
    while time.time() < end:
        if get("http://127.0.0.1:%d/health/ready" % port)[0] == 200:
            return True
        time.sleep(0.1)
    return False


class Replica:
    def __init__(self, tmp, bank, port):
        self.tmp, self.bank, self.port, self.proc = tmp, bank, port, None

    def start(self):
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", MODEL, "--bank", "washer=" + self.bank,
             "--listen", "127.0.0.1:%d" % self.port, "--api-key-file", os.path.join(self.tmp, "key"),
             "--workers", "1", "--threads-per-worker", "1", "--queue", "16"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "serve-%d.log" % self.port), "ab"))
        return wait_ready(self.port)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main(tmp):
    with open(os.path.join(tmp, "key"), "w") as f:
        f.write(KEY + "\n")
    bank = os.path.join(tmp, "washer.adbank")
    good = os.path.join(SAMPLES, "good")
    subprocess.run([BIN, "fit", "-m", MODEL, "-o", bank, "--resolution", "112",
                    os.path.join(good, "washer_01.png"), os.path.join(good, "washer_02.png")],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    reps = [Replica(tmp, bank, free_port()), Replica(tmp, bank, free_port())]
    check(all(r.start() for r in reps), "two replicas ready on ports %s" % [r.port for r in reps])

    front, stats = free_port(), free_port()
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write("""global
    tune.bufsize 1048576
    maxconn 256
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503
    option http-buffer-request
frontend fe
    bind 127.0.0.1:%d
    default_backend replicas
frontend stats
    bind 127.0.0.1:%d
    http-request return status 200 content-type text/plain string ok if { path /up }
backend replicas
    balance roundrobin
    option httpchk GET /health/ready
    default-server check inter 200ms fall 1 rise 2
    server r0 127.0.0.1:%d
    server r1 127.0.0.1:%d
""" % (front, stats, reps[0].port, reps[1].port))
    ha = subprocess.Popen(["haproxy", "-f", cfg, "-db"], stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(tmp, "haproxy.log"), "wb"))
    try:
        up = False
        for _ in range(100):
            if get("http://127.0.0.1:%d/up" % stats)[0] == 200 and \
                    get("http://127.0.0.1:%d/health/ready" % front)[0] == 200:
                up = True
                break
            time.sleep(0.1)
        check(up, "HAProxy forwards to the replicas")

        lua = os.path.join(tmp, "post.lua")
        img = os.path.abspath(os.path.join(SAMPLES, "test", "scratch.png"))
        with open(lua, "w") as f:
            f.write("""local f = io.open("%s", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
wrk.headers["Authorization"] = "Bearer %s"
wrk.path = "/v1/banks/washer/predict"
local codes = {}
response = function(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT {\\"requests\\": %%d, \\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, \\"status\\": %%d, \\"timeout\\": %%d}\\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
""" % (img, KEY))
        wrk = subprocess.Popen(["wrk", "-t", "2", "-c", "4", "-d", "%ds" % LOAD_S, "--timeout", "10s",
                                "-s", lua, "http://127.0.0.1:%d" % front],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(3)
        reps[0].kill()
        print("replica r0 killed with SIGKILL", flush=True)
        time.sleep(2)
        check(reps[0].start(), "replica r0 restarted")
        time.sleep(1)
        code, body = post("http://127.0.0.1:%d/v1/banks/washer/reload" % reps[1].port)
        check(code == 200, "bank reload on replica r1 during the load: HTTP %s" % code)
        try:
            out, _ = wrk.communicate(timeout=LOAD_S + 30)
        except subprocess.TimeoutExpired:
            wrk.kill()
            out, _ = wrk.communicate()
        print(out, flush=True)
        m = re.search(r"RESULT (\{.*\})", out)
        check(m is not None, "wrk reports its counts")
        if m:
            res = json.loads(m.group(1))
            errors = res["connect"] + res["read"] + res["write"] + res["timeout"]
            check(res["requests"] > 10, "requests answered under load: %d" % res["requests"])
            check(errors == 0 and res["status"] == 0,
                  "no request failed: %d socket errors, %d non-2xx answers" % (errors, res["status"]))
        check(get("http://127.0.0.1:%d/health/ready" % front)[0] == 200, "the pool is healthy after the load")
    finally:
        ha.terminate()
        try:
            ha.wait(timeout=10)
        except subprocess.TimeoutExpired:
            ha.kill()
        for r in reps:
            r.stop()


if __name__ == "__main__":
    base = os.environ.get("AD_TMP") or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="haproxy-", dir=base)
    try:
        main(tmp)
    except Exception as e:  # report, never hang
        failed += 1
        print("FAIL %r" % (e,), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
