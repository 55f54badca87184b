"""anomalydino serve, the contract: every endpoint and error code, and equality with
`anomalydino predict` (score digit for digit, map and overlay byte for byte)."""
import base64
import json
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import *  # noqa: E402,F401,F403
import serve_util as U  # noqa: E402

T = U.tmpdir("serve_contract")
refs = os.path.join(T, "good")
os.makedirs(refs)
for i in range(3):
    U.write(os.path.join(refs, "g%d.png" % i), U.png_bytes(96, 80, i))
one_ref = os.path.join(T, "one")
os.makedirs(one_ref)
U.write(os.path.join(one_ref, "g.png"), U.png_bytes(96, 80, 0))
img_ok = U.write(os.path.join(T, "test_ok.png"), U.png_bytes(96, 80, 10))
img_ng = U.write(os.path.join(T, "test_ng.png"), U.png_bytes(100, 84, 11, defect=True))
slow_img = U.write(os.path.join(T, "slow.png"), U.png_bytes(640, 640, 12))
bank = U.fit(os.path.join(T, "part.adbank"), [refs], ["--resolution", "112", "--no-rotate"])
bank_nothr = U.fit(os.path.join(T, "nothr.adbank"), [one_ref], ["--resolution", "112", "--no-rotate"])
bank_slow = U.fit(os.path.join(T, "slow.adbank"), [refs], ["--resolution", "0", "--no-rotate"])
bank_other = U.fit(os.path.join(T, "other.adbank"), [refs], ["--resolution", "112", "--no-rotate"],
                   weights=U.WEIGHTS_OTHER)
key = "k3y-0123456789abcdef"
key_file = U.write(os.path.join(T, "key"), (key + "\n").encode())

# ---- command line ---------------------------------------------------------------------------
rc, so, se = U.run(["serve", "--help"])
U.check(rc == 0 and "usage: anomalydino serve" in so, "serve --help: exit 0 and the usage")
rc, so, se = U.run(["serve", "--bogus"])
U.check(rc == 2, "serve --bogus: exit 2")
rc, so, se = U.run(["serve", "-m", U.WEIGHTS])
U.check(rc == 2 and "--bank" in se, "serve without --bank: exit 2, names --bank")
rc, so, se = U.run(["serve", "-m", U.WEIGHTS, "--bank", "bad name=" + bank])
U.check(rc == 2, "serve --bank with an invalid name: exit 2")
rc, so, se = U.run(["serve", "-m", U.WEIGHTS, "--bank", "a=" + bank, "--listen", "nowhere"])
U.check(rc == 2 and "--listen" in se, "serve --listen without a port: exit 2")
rc, so, se = U.run(["serve", "-m", U.WEIGHTS, "--bank", "a=" + bank, "--bank", "a=" + bank])
U.check(rc == 2 and "twice" in se, "serve with a bank name given twice: exit 2")
rc, so, se = U.run(["serve", "--listen", "127.0.0.1:0", "-m", U.WEIGHTS, "--bank", "x=" + bank_other])
U.check(rc == 1 and "x" in se and ("weights" in se or "fingerprint" in se or "model" in se),
        "a bank made with other weights stops the server: exit 1 (%s)" % se.strip().splitlines()[-1])
corrupt = U.write(os.path.join(T, "corrupt.adbank"), open(bank, "rb").read()[:500])
rc, so, se = U.run(["serve", "--listen", "127.0.0.1:0", "-m", U.WEIGHTS, "--bank", "x=" + corrupt])
U.check(rc == 1 and "corrupt.adbank" in se, "a corrupt bank stops the server: exit 1")
rc, so, se = U.run(["serve", "--listen", "127.0.0.1:0", "-m", U.WEIGHTS, "--bank", "x=" + bank,
                    "--api-key-file", os.path.join(T, "missing")])
U.check(rc == 1 and "api-key-file" in se, "a missing key file: exit 1")

# not ready while a bank is still loading: the bank path is a FIFO that the test fills late
# (a FIFO is not a regular file: the load then fails and the server exits 1)
fifo = os.path.join(T, "fifo.adbank")
os.mkfifo(fifo)
L = U.Server(["-m", U.WEIGHTS, "--bank", "late=" + fifo], "serve_contract_loading")
st, h, d = L.json("GET", "/health/live")
U.check(st == 200, "while the banks load: /health/live 200")
for p in ("/health/ready", "/v2/health/ready"):
    st, h, d = L.json("GET", p)
    U.check(st == 503 and d["error"]["type"] == "not_ready", "while the banks load: %s 503" % p)
st, h, d = L.predict("late", open(img_ok, "rb").read())
U.check(st == 503 and d["error"]["type"] == "not_ready", "while the banks load: predict 503")
st, h, d = L.json("GET", "/v2/models/late/ready")
U.check(st == 503, "while the banks load: /v2/models/late/ready 503")
# feed whichever reader the server has open (the digest, then the bank loader), bounded
end = time.time() + 30 * U.SLOW
while L.proc.poll() is None and time.time() < end:
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no reader yet
        time.sleep(0.01)
        continue
    try:
        os.write(fd, open(bank, "rb").read()[:4096])
    except OSError:
        pass
    os.close(fd)
    time.sleep(0.01)
try:
    rc = L.proc.wait(10 * U.SLOW)
except Exception:
    rc = None
U.check(rc == 1 and "not a regular file" in L.stderr(), "a bank that cannot be loaded at start: exit 1")
L.stop(expect_rc=None)

# ---- the CLI's answers ----------------------------------------------------------------------
cli_out = os.path.join(T, "cli")
rc, so, se = U.run(["predict", "-m", U.WEIGHTS, "-b", bank, "--threads", "1", "--format", "json",
                    "--maps", cli_out + "/maps", "--overlays", cli_out + "/ov", "--grids",
                    cli_out + "/grids", img_ok, img_ng])
U.check(rc == 0, "predict (CLI) runs")
cli_doc = json.loads(so)
cli = {os.path.basename(r["image"]): r for r in cli_doc["results"]}
cli_thr = cli_doc["settings"]["threshold"]
rc, so_csv, se = U.run(["predict", "-m", U.WEIGHTS, "-b", bank, "--threads", "1", img_ok, img_ng])
cli_csv = {os.path.basename(l.split(",")[0]): l.split(",")[1] for l in so_csv.splitlines()[1:]}


def npy_f32(data):
    hl = struct.unpack("<H", data[8:10])[0]
    body = data[10 + hl:]
    return struct.unpack("<%df" % (len(body) // 4), body)


# ---- the service ----------------------------------------------------------------------------
S = U.Server(["-m", U.WEIGHTS, "--bank", "part=" + bank, "--bank", "nothr=" + bank_nothr,
              "--bank", "slow=" + bank_slow, "--api-key-file", key_file, "--threads-per-worker",
              "1", "--max-body", "2000000", "--max-pixels", "1000000"], "serve_contract", key=key)
U.check(S.wait_ready(), "ready within the bound")
st, h, d = S.json("GET", "/health/live", auth=False)
U.check(st == 200 and d == {"status": "live"}, "GET /health/live without a key: 200")
for p in ("/health/ready", "/v2/health/ready", "/v2/health/live"):
    st, h, d = S.json("GET", p, auth=False)
    U.check(st == 200, "GET %s without a key: 200" % p)

# auth
st, h, d = S.json("GET", "/v1/banks", auth=False)
U.check(st == 401 and d["error"]["code"] == 401 and d["error"]["type"] == "unauthorized",
        "GET /v1/banks without a key: 401 with the JSON error")
U.check(h.get("www-authenticate") == "Bearer", "401 names the Bearer scheme")
st, h, d = S.json("GET", "/v1/banks", auth=False, headers={"Authorization": "Bearer wrong-key-000000000"})
U.check(st == 401, "a wrong Bearer key: 401")
st, h, d = S.json("GET", "/v1/banks", auth=False, headers={"X-API-Key": key[:-1]})
U.check(st == 401, "a key one character short: 401")
st, h, d = S.json("GET", "/v1/banks", auth=False, headers={"X-API-Key": key})
U.check(st == 200, "X-API-Key: 200")
for p in ("/metrics", "/v2", "/v2/models/part", "/v1/banks/part"):
    st, _, _ = S.request("GET", p, auth=False)
    U.check(st == 401, "GET %s without a key: 401" % p)
st, _, _ = S.request("POST", "/v1/banks/part/predict", open(img_ok, "rb").read(),
                     {"Content-Type": "image/png"}, auth=False)
U.check(st == 401, "predict without a key: 401")

# banks
st, h, d = S.json("GET", "/v1/banks")
names = [b["name"] for b in d["banks"]]
U.check(st == 200 and names == ["part", "nothr", "slow"], "GET /v1/banks lists the banks in order")
import hashlib  # noqa: E402
sha = hashlib.sha256(open(bank, "rb").read()).hexdigest()
st, h, b = S.json("GET", "/v1/banks/part")
U.check(st == 200 and b["sha256"] == sha, "GET /v1/banks/part: the file's sha256")
U.check(b["weights"]["name"] == "custom" and len(b["weights"]["fingerprint"]) == 16,
        "bank: weights name and fingerprint")
U.check(b["resolution"] == 112 and b["rotate"] is False and b["masking"] == {"references": False, "test": False},
        "bank: resolution, rotation and masking")
U.check(b["threshold"]["rule"] == "max" and b["threshold"]["value"] == cli_thr,
        "bank: threshold and its rule")
U.check(b["references"] == 3 and b["rows"] == 3 * 8 * 9, "bank: references and rows (%s)" % b["rows"])
st, h, b = S.json("GET", "/v1/banks/nothr")
U.check(st == 200 and b["threshold"]["value"] is None, "a bank without threshold says so")
st, h, d = S.json("GET", "/v1/banks/nope")
U.check(st == 404 and d["error"]["type"] == "unknown_bank", "GET /v1/banks/nope: 404")
st, h, d = S.json("GET", "/v1/nothing")
U.check(st == 404 and d["error"]["code"] == 404, "unknown path: 404")
st, h, d = S.json("DELETE", "/v1/banks/part")
U.check(st == 405 and h.get("allow") == "GET", "DELETE on a GET endpoint: 405 with Allow")

# predict: equality with the CLI
for name, path in (("test_ok.png", img_ok), ("test_ng.png", img_ng)):
    data = open(path, "rb").read()
    st, h, d = S.predict("part", data, "?outputs=map,overlay,grid&id=" + name)
    U.check(st == 200, "predict %s: 200" % name)
    c = cli[name]
    U.check(d["score"] == c["score"] and repr(d["score"]) == repr(c["score"]),
            "%s: score %r equals predict's %r digit for digit" % (name, d["score"], c["score"]))
    U.check("%.6f" % d["score"] == cli_csv[name], "%s: score prints as the CSV's %s" % (name, cli_csv[name]))
    U.check(d["verdict"] == c["verdict"] and d["threshold"] == cli_thr,
            "%s: verdict %s and threshold as predict's" % (name, d["verdict"]))
    stem = name[:-4]
    m = base64.b64decode(d["outputs"]["map"]["base64"])
    cm = open(os.path.join(cli_out, "maps", stem + ".npy"), "rb").read()
    U.check(m == cm, "%s: map .npy byte-identical to predict --maps (%d bytes)" % (name, len(cm)))
    ov = base64.b64decode(d["outputs"]["overlay"]["base64"])
    cov = open(os.path.join(cli_out, "ov", stem + ".png"), "rb").read()
    U.check(ov == cov, "%s: overlay PNG byte-identical to predict --overlays (%d bytes)" % (name, len(cov)))
    grid = [v for row in d["outputs"]["grid"]["data"] for v in row]
    cg = npy_f32(open(os.path.join(cli_out, "grids", stem + ".npy"), "rb").read())
    diff = max(abs(struct.unpack("<f", struct.pack("<f", a))[0] - b_) for a, b_ in zip(grid, cg))
    U.check(len(grid) == len(cg) and diff == 0,
            "%s: grid equals predict --grids (largest difference %g)" % (name, diff))
    U.check(d["id"] == name and d["bank"] == "part" and d["bank_sha256"] == sha,
            "%s: id, bank and sha256 echoed" % name)
    U.check(d["image"]["width"] == (96 if "ok" in name else 100), "%s: image size" % name)
    U.check(set(d["timings_ms"]) >= {"decode", "features", "search", "map"}, "%s: per-stage timings" % name)
    U.check(abs(d["margin"] - (d["score"] - d["threshold"])) < 1e-15, "%s: margin = score - threshold" % name)
    # PNG answer
    st, h2, png = S.request("POST", "/v1/banks/part/predict", data,
                            {"Content-Type": "image/png", "Accept": "image/png"})
    U.check(st == 200 and h2.get("content-type") == "image/png" and png == cov,
            "%s: Accept: image/png answers the overlay itself, byte-identical" % name)
    U.check(float(h2.get("x-anomaly-score", "nan")) == c["score"] and h2.get("x-verdict") == c["verdict"],
            "%s: X-Anomaly-Score and X-Verdict headers" % name)
    # multipart
    body, ct = U.multipart("image", name, data)
    st, h3, d3 = S.predict("part", body, ctype=ct)
    U.check(st == 200 and d3["score"] == c["score"], "%s: multipart/form-data gives the same score" % name)

data = open(img_ok, "rb").read()
st, h, d = S.predict("part", data, "?threshold=0")
U.check(st == 200 and d["verdict"] == "NG" and d["threshold"] == 0 and d["threshold_source"] == "request"
        and d["score"] == cli["test_ok.png"]["score"], "threshold=0: NG, raw score unchanged")
st, h, d = S.predict("part", data, "?threshold=5")
U.check(st == 200 and d["verdict"] == "OK", "threshold=5: OK")
st, h, d = S.predict("part", data, "?threshold=abc")
U.check(st == 400 and d["error"]["type"] == "bad_request", "threshold=abc: 400")
st, h, d = S.predict("part", data, "?outputs=map,bogus")
U.check(st == 400, "outputs=bogus: 400")
st, h, d = S.predict("nothr", data)
U.check(st == 200 and d["verdict"] is None and d["threshold"] is None and d["margin"] is None,
        "a bank without threshold: verdict, threshold and margin null")
st, h, d = S.predict("nothr", data, "?threshold=0.01")
U.check(st == 200 and d["verdict"] in ("OK", "NG"), "a bank without threshold + threshold=: a verdict")

# errors
st, h, d = S.predict("nope", data)
U.check(st == 404 and d["error"]["type"] == "unknown_bank", "predict on an unknown bank: 404")
st, h, d = S.predict("part", data, ctype="text/plain")
U.check(st == 415 and d["error"]["code"] == 415, "Content-Type text/plain: 415")
st, h, d = S.predict("part", b"")
U.check(st == 400, "empty body: 400")
st, h, d = S.predict("part", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
U.check(st == 422 and d["error"]["type"] == "invalid_image", "a corrupt PNG: 422")
st, h, d = S.predict("part", b"hello world, not an image", ctype="image/jpeg")
U.check(st == 422, "not an image: 422")
st, h, d = S.predict("slow", U.png_bytes(10, 10, 1))
U.check(st == 422, "an image smaller than one patch (bank at resolution 0): 422")
st, h, d = S.predict("part", U.png_bomb(1500))
U.check(st == 422 and d["error"]["type"] == "too_many_pixels", "1500 x 1500 over --max-pixels 1000000: 422")
head = ("POST /v1/banks/part/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        "Content-Type: image/png\r\nContent-Length: 2000001\r\n\r\n" % key).encode()
ans, sent, dt = U.push_and_read(S.port, head, [b"x" * 2000001])
U.check(U.status_of(ans) == 413 and b'"too_large"' in ans, "a body over --max-body: 413")
body, ct = U.multipart("picture", "a.png", data)
st, h, d = S.predict("part", body, ctype=ct)
U.check(st == 400 and "image" in d["error"]["message"], "multipart without an 'image' field: 400")

# 503 (queue full) and 504 (timeout) from a server with one worker, queue 1, short deadline
slow = open(slow_img, "rb").read()
S2 = U.Server(["-m", U.WEIGHTS, "--bank", "slow=" + bank_slow, "--threads-per-worker", "1",
               "--queue", "1", "--timeout-ms", str(int(3000 * U.SLOW))], "serve_contract_503")
U.check(S2.wait_ready(), "second server ready")
codes = []
lock = threading.Lock()


def shoot(q=""):
    st, h, d = S2.predict("slow", slow, q, timeout=60)
    with lock:
        codes.append((st, h.get("retry-after"), (d or {}).get("error", {}).get("type")))


th = [threading.Thread(target=shoot) for _ in range(6)]
for t in th:
    t.start()
for t in th:
    t.join(120)
n503 = [c for c in codes if c[0] == 503]
U.check(len(codes) == 6 and all(c[0] in (200, 503) for c in codes) and n503,
        "6 slow requests on 1 worker + queue 1: only 200 and 503 (%s)" % [c[0] for c in codes])
U.check(all(c[1] == "1" and c[2] == "queue_full" for c in n503), "503 carries Retry-After and queue_full")
S2.stop()
S3 = U.Server(["-m", U.WEIGHTS, "--bank", "slow=" + bank_slow, "--threads-per-worker", "1",
               "--timeout-ms", "1"], "serve_contract_504")
U.check(S3.wait_ready(), "third server ready")
st, h, d = S3.predict("slow", slow)
U.check(st == 504 and d["error"]["type"] == "timeout", "a job past --timeout-ms 1: 504")
st, h, d = S3.json("GET", "/health/live")
U.check(st == 200, "the server still answers after a 504")
U.check((S3.metric('anomalydino_rejected_total{reason="timeout"}') or 0) >= 1, "timeouts are counted")
S3.stop()

# KServe v2
st, h, d = S.json("GET", "/v2")
U.check(st == 200 and d["name"] == "anomalydino", "GET /v2: server metadata")
st, h, d = S.json("GET", "/v2/models/part")
U.check(st == 200 and d["name"] == "part" and d["versions"] == [sha[:12]]
        and d["inputs"][0]["datatype"] == "BYTES", "GET /v2/models/part: metadata")
st, h, d = S.json("GET", "/v2/models/part/ready")
U.check(st == 200 and d["ready"] is True, "GET /v2/models/part/ready: 200")
st, h, d = S.json("GET", "/v2/models/nope")
U.check(st == 404, "GET /v2/models/nope: 404")
req = {"id": "r1", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [U.b64(data)]}],
       "outputs": [{"name": "score"}, {"name": "verdict"}, {"name": "anomaly_map"}]}
st, h, d = S.json("POST", "/v2/models/part/infer", json.dumps(req), {"Content-Type": "application/json"})
outs = {o["name"]: o for o in (d or {}).get("outputs", [])}
U.check(st == 200 and d["id"] == "r1" and outs["score"]["data"][0] == cli["test_ok.png"]["score"],
        "POST /v2/models/part/infer: the same score")
U.check(outs["verdict"]["data"] == [cli["test_ok.png"]["verdict"]], "infer: the verdict")
cm = npy_f32(open(os.path.join(cli_out, "maps", "test_ok.npy"), "rb").read())
am = outs["anomaly_map"]
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]  # noqa: E731
diff = max(abs(f32(a) - b_) for a, b_ in zip(am["data"], cm))
U.check(am["shape"] == [80, 96] and len(am["data"]) == len(cm) and diff == 0,
        "infer: anomaly_map equals predict --maps (largest difference %g)" % diff)
req2 = dict(req, outputs=[{"name": "score"}])
st, h, d = S.json("POST", "/v2/models/part/infer", json.dumps(req2))
U.check(st == 200 and [o["name"] for o in d["outputs"]] == ["score", "verdict"], "infer without anomaly_map")
st, h, d = S.json("POST", "/v2/models/part/infer", "{not json", {"Content-Type": "application/json"})
U.check(st == 400, "infer with broken JSON: 400")
bad = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["!!!not base64!!!"]}]}
st, h, d = S.json("POST", "/v2/models/part/infer", json.dumps(bad), {"Content-Type": "application/json"})
U.check(st == 400, "infer with invalid base64: 400")
st, h, d = S.json("POST", "/v2/models/part/infer", json.dumps(req), {"Content-Type": "text/plain"})
U.check(st == 415, "infer with text/plain: 415")
bad = dict(req, outputs=[{"name": "nonsense"}])
st, h, d = S.json("POST", "/v2/models/part/infer", json.dumps(bad))
U.check(st == 400, "infer asking for an unknown output: 400")
corrupt_req = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [U.b64(b"notanimage")]}]}
st, h, d = S.json("POST", "/v2/models/part/infer", json.dumps(corrupt_req))
U.check(st == 422, "infer with a corrupt image: 422")
st, h, d = S.json("POST", "/v2/models/nope/infer", json.dumps(req))
U.check(st == 404, "infer on an unknown model: 404")

# reload
st, h, d = S.json("POST", "/v1/banks/part/reload")
U.check(st == 200 and d["reloaded"][0]["ok"] and d["reloaded"][0]["sha256"] == sha, "POST reload: 200")
st, h, d = S.json("POST", "/v1/banks/nope/reload")
U.check(st == 404, "reload of an unknown bank: 404")

# metrics
st, h, body = S.request("GET", "/metrics")
txt = body.decode()
U.check(st == 200 and h.get("content-type", "").startswith("text/plain"), "GET /metrics: text/plain")
for needle in ('anomalydino_requests_total{bank="part",code="200",verdict="OK"}',
               'anomalydino_requests_total{bank="part",code="422",verdict=""}',
               'anomalydino_stage_seconds_bucket{stage="features",le="+Inf"}',
               'anomalydino_stage_seconds_count{stage="search"}',
               'anomalydino_queue_depth ', 'anomalydino_rejected_total{reason="too_large"} ',
               'anomalydino_rejected_total{reason="queue_full"}', 'anomalydino_reloads_total{bank="part"} 1',
               'anomalydino_reload_failures_total{bank="part"} 0', 'anomalydino_score_bucket{bank="part",le="0.5"}',
               'anomalydino_bank_info{bank="part",sha256="%s"' % sha):
    U.check(needle in txt, "metrics: %s" % needle.strip())
U.check((S.metric('anomalydino_rejected_total{reason="too_large"}') or 0) >= 1, "metrics: a 413 is counted")

S.stop()
U.finish()
