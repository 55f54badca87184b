"""anomalydino serve under hostile or broken clients: slow clients, a 2 GiB Content-Length, an
endless chunked body, huge headers, malformed multipart, truncated uploads, corrupt images,
clients that leave, a corrupt bank reloaded during predictions, SIGTERM with requests in
flight. Every loop is bounded; all traffic is on 127.0.0.1."""
import os
import shutil
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as U  # noqa: E402

T = U.tmpdir("serve_faults")
refs = os.path.join(T, "good")
os.makedirs(refs)
for i in range(3):
    U.write(os.path.join(refs, "g%d.png" % i), U.png_bytes(96, 80, i))
img = U.png_bytes(96, 80, 10)
# Large in pixels (about 0.2 s per prediction with the tiny model at full size) but small on
# the wire (a smooth pattern, under --max-body): the disconnect and drain checks need jobs still
# queued or running when the clients act, on a fast machine too.
def smooth_png(w, h):
    rows = []
    for y in range(h):
        base = bytes(((x * 3 + y * 2) & 0xFF) for x in range(w))
        row = bytearray(3 * w)
        row[0::3] = base
        row[1::3] = bytes((v * 7) & 0xFF for v in base)
        row[2::3] = bytes(255 - v for v in base)
        rows.append(b"\x00" + bytes(row))
    return U._png(w, h, 2, b"".join(rows))


slow_img = smooth_png(1024, 1024)
bank_a = U.fit(os.path.join(T, "a.adbank"), [refs], ["--resolution", "112", "--no-rotate"])
bank_b = U.fit(os.path.join(T, "b.adbank"), [refs], ["--resolution", "112", "--no-rotate", "--knn", "2"])
bank_slow = U.fit(os.path.join(T, "slow.adbank"), [refs], ["--resolution", "0", "--no-rotate"])
live = os.path.join(T, "live.adbank")
shutil.copy(bank_a, live)
import hashlib  # noqa: E402
sha_a = hashlib.sha256(open(bank_a, "rb").read()).hexdigest()
sha_b = hashlib.sha256(open(bank_b, "rb").read()).hexdigest()

S = U.Server(["-m", U.WEIGHTS, "--bank", "part=" + live, "--bank", "slow=" + bank_slow,
              "--workers", "2", "--threads-per-worker", "1", "--max-body", "1048576",
              "--idle-timeout-s", "3", "--queue", "32", "--timeout-ms", str(int(20000 * U.SLOW))],
             "serve_faults")
U.check(S.wait_ready(), "ready within the bound")
P = S.port


def healthy(what):
    st, h, d = S.predict("part", img)
    U.check(st == 200 and d["score"] > 0, "after %s: predictions still answered" % what)


# ---- slow clients ---------------------------------------------------------------------------
# 20 connections send a request one byte every 0.25 s for ~3 s; meanwhile predictions must be
# answered as fast as without them.
def timed_predictions(n):
    times = []
    ok = True
    for _ in range(n):
        t0 = time.time()
        st, h, d = S.predict("part", img)
        times.append(time.time() - t0)
        ok = ok and st == 200
    return ok, max(times), sorted(times)[len(times) // 2]


ok0, _, base = timed_predictions(5)
stop = threading.Event()
slow_socks = []


def dribble():
    try:
        s = socket.create_connection(("127.0.0.1", P), timeout=5)
    except OSError:
        return
    slow_socks.append(s)
    msg = b"POST /v1/banks/part/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
    for i in range(12):  # bounded: 12 bytes, 3 s
        if stop.is_set():
            break
        try:
            s.send(msg[i:i + 1])
        except OSError:
            break
        time.sleep(0.25)


ths = [threading.Thread(target=dribble, daemon=True) for _ in range(20)]
for t in ths:
    t.start()
time.sleep(0.5)
ok1, worst, med = timed_predictions(20)
stop.set()
for t in ths:
    t.join(10)
for s in slow_socks:
    s.close()
print("slow clients: predictions median %.1f ms, worst %.1f ms with 20 slow clients; median "
      "%.1f ms without" % (1e3 * med, 1e3 * worst, 1e3 * base))
U.check(ok0 and ok1, "20 slow clients: every other request answered 200")
# a design where slow clients held workers would stall each prediction for the 3 s they dribble;
# the bounds leave room for a loaded shared machine
U.check(med < max(5 * base, 0.1 * U.SLOW) and worst < 2.0 * U.SLOW,
        "20 slow clients do not delay other requests (median %.1f ms, worst %.1f ms; %.1f ms "
        "without)" % (1e3 * med, 1e3 * worst, 1e3 * base))

# an idle connection is closed after --idle-timeout-s
s = socket.create_connection(("127.0.0.1", P), timeout=10)
s.send(b"GET /health/live HTTP/1.1\r\n")
t0 = time.time()
try:
    closed = s.recv(100) == b""
except (socket.timeout, ConnectionResetError):
    closed = False
s.close()
U.check(closed and time.time() - t0 < 8, "a silent half-sent request is closed after the idle timeout "
        "(%.1f s)" % (time.time() - t0))

# ---- huge bodies ----------------------------------------------------------------------------
head = b"POST /v1/banks/part/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
ans, sent, dt = U.push_and_read(P, head + b"Content-Length: 2147483648\r\n\r\n",
                                (b"\0" * 65536 for _ in range(32768)), timeout=10)
U.check(U.status_of(ans) == 413 and b'"too_large"' in ans and dt < 5,
        "Content-Length 2 GiB: 413 in %.2f s after %d body bytes were sent" % (dt, sent))
U.check(sent < 64 << 20, "the 2 GiB body is not read (%d bytes accepted)" % sent)


def endless_chunks():
    for _ in range(4096):  # at most 256 MiB offered
        yield b"10000\r\n" + b"x" * 65536 + b"\r\n"


before = S.metric('anomalydino_rejected_total{reason="too_large"}') or 0
ans, sent, dt = U.push_and_read(P, head + b"Transfer-Encoding: chunked\r\n\r\n", endless_chunks(), timeout=20)
st = U.status_of(ans)
U.check(st in (413, None) and dt < 10 and sent < 64 << 20,
        "an endless chunked body: refused (status %s) after %d bytes, %.2f s" % (st, sent, dt))
after = S.metric('anomalydino_rejected_total{reason="too_large"}') or 0
U.check(after > before, "the endless body is counted as too large")
healthy("the huge bodies")

# ---- huge headers ---------------------------------------------------------------------------
ans, closed = U.raw_exchange(P, b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
U.check(U.status_of(ans) in (431, 413, 400) or (closed and not ans),
        "a 200 kB header: refused (%s)" % U.status_of(ans))
many = b"".join(b"X-H%d: v\r\n" % i for i in range(20000))
ans, closed = U.raw_exchange(P, b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
U.check(U.status_of(ans) in (431, 413, 400) or (closed and not ans),
        "20000 headers: refused (%s)" % U.status_of(ans))
ans, closed = U.raw_exchange(P, b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
U.check(U.status_of(ans) in (414, 431, 413, 400) or (closed and not ans),
        "a 100 kB URL: refused (%s)" % U.status_of(ans))
healthy("the huge headers")

# ---- malformed multipart, truncated uploads, corrupt images ---------------------------------
def post(body, ctype, length=None):
    n = len(body) if length is None else length
    req = (b"POST /v1/banks/part/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
           + ctype.encode() + b"\r\nContent-Length: %d\r\n\r\n" % n + body)
    return U.raw_exchange(P, req, timeout=10)


b_ = b"----xx"
ans, _ = post(b"this is not multipart at all", "multipart/form-data; boundary=----xx")
U.check(U.status_of(ans) == 400, "garbage as multipart: 400")
trunc = (b"------xx\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
         b"Content-Type: image/png\r\n\r\n" + img[:len(img) // 2])
ans, _ = post(trunc, "multipart/form-data; boundary=----xx")
U.check(U.status_of(ans) == 400, "multipart without its closing boundary: 400")
ans, _ = post(b"------xx\r\nContent-Disposition: form-data\r\n\r\nabc\r\n------xx--\r\n",
              "multipart/form-data; boundary=----xx")
U.check(U.status_of(ans) == 400, "multipart part without a name: 400")
ans, _ = post(b"", "multipart/form-data")
U.check(U.status_of(ans) == 400, "multipart without a boundary: 400")
two = (b"------xx\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n" + img +
       b"\r\n------xx\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n" + img + b"\r\n------xx--\r\n")
ans, _ = post(two, "multipart/form-data; boundary=----xx")
U.check(U.status_of(ans) == 400, "multipart with two image fields: 400")
for what, body in (("a truncated PNG", img[:len(img) // 2]), ("a PNG with a broken IDAT", img[:60] + b"\xff" * 200 + img[260:]),
                   ("a truncated JPEG", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40),
                   ("random bytes", os.urandom(5000)), ("a PNG signature only", b"\x89PNG\r\n\x1a\n")):
    ans, _ = post(body, "image/png")
    U.check(U.status_of(ans) == 422 and b'"invalid_image"' in ans, "%s: 422" % what)
bomb = U.png_bomb(12000)
t0 = time.time()
ans, _ = post(bomb, "image/png")
U.check(U.status_of(ans) == 422 and b"too_many_pixels" in ans and time.time() - t0 < 2 * U.SLOW,
        "a 12000 x 12000 decompression bomb: 422 from its header in %.2f s" % (time.time() - t0))
# truncated upload: Content-Length promises more than is sent, then the client leaves
for _ in range(5):
    s = socket.create_connection(("127.0.0.1", P), timeout=5)
    s.sendall(head + b"Content-Length: 100000\r\n\r\n" + img[:1000])
    s.close()
ans, closed = post(img[:100], "image/png", length=5000)  # and one that waits for the idle timeout
U.check(closed and not ans, "a truncated upload is dropped without an answer")
healthy("the malformed uploads")

# ---- clients that leave cancel their queued work ------------------------------------------
before = S.metric('anomalydino_rejected_total{reason="client_gone"}') or 0
keep = []
req = (b"POST /v1/banks/slow/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
       b"Content-Length: %d\r\n\r\n" % len(slow_img) + slow_img)
for i in range(10):
    s = socket.create_connection(("127.0.0.1", P), timeout=30)
    s.sendall(req)
    keep.append(s)
time.sleep(0.05)
for s in keep[2:]:
    s.close()  # the 8 last ones leave while queued behind the 2 workers
answered = 0
for s in keep[:2]:
    s.settimeout(60 * U.SLOW)
    data = b""
    try:
        while b"}}" not in data and b"\"score\"" not in data:
            d = s.recv(65536)
            if not d:
                break
            data += d
            if data.count(b"\r\n\r\n") and data.endswith(b"}"):
                break
    except socket.timeout:
        pass
    answered += U.status_of(data) == 200
    s.close()
U.check(answered == 2, "the clients that stayed are answered")
end = time.time() + 10 * U.SLOW
gone = before
while time.time() < end and gone - before < 1:
    gone = S.metric('anomalydino_rejected_total{reason="client_gone"}') or 0
    time.sleep(0.1)
U.check(gone - before >= 1, "queued jobs of clients that left are cancelled (%d)" % (gone - before))
healthy("the clients that left")

# ---- reload of a corrupt bank while predictions run -----------------------------------------
results = []
lock = threading.Lock()
stop = threading.Event()


def predictor():
    for _ in range(400):  # bounded
        if stop.is_set():
            break
        st, h, d = S.predict("part", img)
        with lock:
            results.append((st, (d or {}).get("bank_sha256")))


ths = [threading.Thread(target=predictor) for _ in range(4)]
for t in ths:
    t.start()
reload_codes = []
good = [bank_b, bank_a]


def wait_predictions(n, limit_s=20):
    """Until n predictions have been answered (bounded): each reload then overlaps with
    predictions even when a loaded machine runs them slowly."""
    end = time.time() + limit_s * U.SLOW
    while time.time() < end:
        with lock:
            if len(results) >= n:
                return
        time.sleep(0.01)


wait_predictions(2)
for i in range(12):
    with lock:
        done = len(results)
    wait_predictions(done + 2)
    corrupt = open(good[i % 2], "rb").read()
    corrupt = corrupt[:len(corrupt) // 2] if i % 3 else corrupt[:100] + b"\x00" * 64 + corrupt[164:]
    U.write(live + ".tmp", corrupt)
    os.replace(live + ".tmp", live)
    st, h, d = S.json("POST", "/v1/banks/part/reload")
    reload_codes.append(st)
    shutil.copy(good[i % 2], live + ".tmp")
    os.replace(live + ".tmp", live)
    if i % 4 == 3:
        S.signal(signal.SIGHUP)
        time.sleep(0.05)
    else:
        st, h, d = S.json("POST", "/v1/banks/part/reload")
        reload_codes.append(st)
stop.set()
for t in ths:
    t.join(60 * U.SLOW)
codes = [c for c, _ in results]
shas = set(sh for _, sh in results)
U.check(len(results) > 20 and all(c == 200 for c in codes),
        "%d predictions during 12 corrupt reloads: all 200 (%s)" % (len(results), sorted(set(codes))))
U.check(shas <= {sha_a, sha_b}, "every prediction ran on a complete bank version")
U.check(reload_codes.count(422) == 12, "every corrupt reload is refused with 422 (%s)" % reload_codes)
fails = S.metric('anomalydino_reload_failures_total{bank="part"}')
U.check(fails == 12, "reload failures counted: %s" % fails)
st, h, d = S.json("GET", "/v1/banks/part")
U.check(st == 200 and d["sha256"] in (sha_a, sha_b) and d["reload_failures"] == 12, "the bank serves a good version")

# ---- SIGTERM with requests in flight ---------------------------------------------------------
got = []


def inflight():
    st, h, d = S.predict("slow", slow_img, timeout=120)
    with lock:
        got.append(st)


ths = [threading.Thread(target=inflight) for _ in range(6)]
for t in ths:
    t.start()
end = time.time() + 10 * U.SLOW
while time.time() < end:  # until all six are queued or running
    q = (S.metric("anomalydino_queue_depth") or 0) + (S.metric("anomalydino_inflight_jobs") or 0)
    if q >= 6:
        break
    time.sleep(0.01)
S.signal(signal.SIGTERM)
for t in ths:
    t.join(120 * U.SLOW)
U.check(got == [200] * 6, "SIGTERM with 6 requests in flight: all answered 200 (%s)" % got)
rc = S.stop()
err = S.stderr()
U.check("draining" in err and "stopped" in err, "the drain is logged")
U.finish()
