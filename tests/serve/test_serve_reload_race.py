"""anomalydino serve: bank reloads (HTTP and SIGHUP, good and corrupt files) racing with
predictions, bank listings and metrics scrapes. Run by `make tsan` under ThreadSanitizer too;
there any report makes the server exit non-zero, which fails the test."""
import hashlib
import os
import shutil
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as U  # noqa: E402

T = U.tmpdir("serve_reload_race")
refs = os.path.join(T, "good")
os.makedirs(refs)
for i in range(3):
    U.write(os.path.join(refs, "g%d.png" % i), U.png_bytes(64, 64, i))
img = U.png_bytes(64, 64, 10)
banks = [U.fit(os.path.join(T, "b%d.adbank" % k), [refs], ["--resolution", "56", "--no-rotate", "--knn", str(k + 1)])
         for k in range(2)]
shas = {hashlib.sha256(open(b, "rb").read()).hexdigest() for b in banks}
live = os.path.join(T, "live.adbank")
shutil.copy(banks[0], live)

S = U.Server(["-m", U.WEIGHTS, "--bank", "part=" + live, "--workers", "2", "--threads-per-worker", "1",
              "--queue", "64", "--timeout-ms", str(int(30000 * U.SLOW))], "serve_reload_race")
U.check(S.wait_ready(), "ready within the bound")
results, lock, stop = [], threading.Lock(), threading.Event()


def predictor():
    for _ in range(400):
        if stop.is_set():
            break
        st, h, d = S.predict("part", img, "?outputs=grid")
        with lock:
            results.append((st, (d or {}).get("bank_sha256")))


def reader():
    for _ in range(60):
        if stop.is_set():
            break
        for p in ("/v1/banks", "/metrics", "/v2/models/part"):
            st, _, _ = S.request("GET", p)
            with lock:
                results.append((st, None))


ths = [threading.Thread(target=predictor) for _ in range(3)] + [threading.Thread(target=reader)]
for t in ths:
    t.start()
codes = []
for i in range(10):  # corrupt files: refused, the old version keeps serving
    data = open(banks[i % 2], "rb").read()
    U.write(live + ".tmp", data[: len(data) // 3])
    os.replace(live + ".tmp", live)
    st, _, _ = S.json("POST", "/v1/banks/part/reload")
    codes.append(st)
    shutil.copy(banks[i % 2], live + ".tmp")
    os.replace(live + ".tmp", live)
    if i % 2:
        S.signal(signal.SIGHUP)
    st, _, _ = S.json("POST", "/v1/banks/part/reload")
    codes.append(st)


def reloader():  # good files, swapped back to back while the predictions run
    for _ in range(100):
        if stop.is_set():
            break
        st, _, _ = S.json("POST", "/v1/banks/part/reload")
        with lock:
            codes.append(st)


rl = [threading.Thread(target=reloader) for _ in range(2)]
for t in rl:
    t.start()
for t in rl:
    t.join(120 * U.SLOW)
stop.set()
for t in ths:
    t.join(120 * U.SLOW)
U.check(codes[:20] == [422, 200] * 10 and all(c == 200 for c in codes[20:]) and len(codes) > 100,
        "corrupt reloads refused (422), good ones done (200): %d reloads" % len(codes))
U.check(len(results) > 10 and all(st == 200 for st, _ in results),
        "%d requests during the reloads: all 200" % len(results))
U.check({sh for _, sh in results if sh} <= shas, "every prediction ran on a complete bank version")
rc = S.stop()
err = S.stderr()
U.check("ThreadSanitizer" not in err and "AddressSanitizer" not in err, "no sanitizer report")
if "ThreadSanitizer" in err:
    print(err[-6000:])
U.finish()
