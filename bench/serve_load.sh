#!/bin/sh
# anomalydino serve under load (not a test; docs/serve.md "Speed"):
#   - throughput and p50/p95/p99 latency at 1, 2, 4 and 8 concurrent clients (wrk), with the
#     tiny test model and a full-size ViT-S/14 with random weights, against the per-image time
#     of `anomalydino predict` measured in the same run (same bank, image and threads);
#   - overload: 16 clients on one worker with --queue 4: every answer must be 200 or 503;
#   - memory: the server's RSS over 2,000 requests.
#   sh bench/serve_load.sh [BUILD_DIR]
#   env: DURATION seconds per point (default 10), THREADS (default 2), RES_S resolution of the
#        ViT-S bank (default 448), TMPDIR, OMP_WAIT_POLICY (default passive: shared machines;
#        the server and predict run with the same setting)
# Everything stays on 127.0.0.1; every server started here is stopped on exit.
set -eu
BUILD=${1:-build}
BIN=$BUILD/anomalydino
D=${DURATION:-10}
T=${THREADS:-2}
RES_S=${RES_S:-448}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
command -v wrk >/dev/null || { echo "serve_load.sh: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cmake --build "$BUILD" -j2 --target anomalydino bench_backbone >/dev/null
W=$(mktemp -d "${TMPDIR:-/tmp}/ad_serve_load.XXXXXX")
SPID=""
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT INT TERM

# images (the test helpers' generator) and the two models
$PY - "$W" "$HERE/../tests/serve" <<'PYEOF'
import os, sys
sys.path.insert(0, sys.argv[2])
import serve_util as U
w = sys.argv[1]
os.makedirs(w + "/refs")
U.write(w + "/refs/r0.png", U.png_bytes(512, 512, 1))
U.write(w + "/test.png", U.png_bytes(512, 512, 2, defect=True))
PYEOF
TINY=$HERE/../tests/data/dinov2/tiny.safetensors
"$BUILD/bench_backbone" --model s --write-model "$W/vits14.safetensors"

start_server() { # WEIGHTS BANK extra options...
    wts=$1; bank=$2; shift 2
    "$BIN" serve -m "$wts" --bank part="$bank" --listen 127.0.0.1:0 "$@" >"$W/serve.out" 2>"$W/serve.err" &
    SPID=$!
    i=0
    while ! grep -q "listening on" "$W/serve.out" 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 300 ] && { echo "serve_load.sh: no listening line" >&2; cat "$W/serve.err" >&2; exit 1; }; sleep 0.1
    done
    PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\)$/\1/p' "$W/serve.out")
    $PY - "$PORT" <<'PYEOF' || { echo "serve_load.sh: not ready (port '$PORT')" >&2; cat "$W/serve.out" "$W/serve.err" >&2; exit 1; }
import http.client, sys, time
end, last = time.time() + 60, None
while time.time() < end:
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
        c.request("GET", "/health/ready")
        if c.getresponse().status == 200:
            sys.exit(0)
    except Exception as e:
        last = e
    time.sleep(0.05)
print("last error: %r" % last, file=sys.stderr)
sys.exit(1)
PYEOF
}
stop_server() {
    kill -TERM "$SPID"; wait "$SPID" || { echo "server exit status $?" >&2; exit 1; }; SPID=""
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# predict's own per-image time (median over N images after one warm-up image)
predict_ms() { # WEIGHTS BANK N
    set -- "$1" "$2" "$3" "$W/test.png"
    imgs=""; k=0
    while [ $k -le "$3" ]; do ln -sf "$W/test.png" "$W/p$k.png"; imgs="$imgs $W/p$k.png"; k=$((k + 1)); done
    # shellcheck disable=SC2086
    ANOMALYDINO_QUIET=1 "$BIN" predict -m "$1" -b "$2" --threads "$T" $imgs 2>/dev/null |
        awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "time_ms") c = i; next }
                 NR > 2 { print $c }' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

echo "| model | bank resolution | clients | requests/s | p50 ms | p95 ms | p99 ms | non-200 | predict ms/image |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in tiny vits14; do
    if [ $m = tiny ]; then wts=$TINY; res=224; n=40; else wts=$W/vits14.safetensors; res=$RES_S; n=6; fi
    "$BIN" fit -m "$wts" -o "$W/$m.adbank" --resolution "$res" --no-rotate --threads "$T" "$W/refs" >/dev/null 2>&1
    pms=$(predict_ms "$wts" "$W/$m.adbank" $n)
    start_server "$wts" "$W/$m.adbank" --workers 1 --threads-per-worker "$T" --queue 64 --timeout-ms 60000
    for c in 1 2 4 8; do
        r=$(IMG=$W/test.png wrk -t "$c" -c "$c" -d "${D}s" --timeout 60s -s "$HERE/serve_load.lua" \
            "http://127.0.0.1:$PORT" | grep '^RESULT')
        tot=$(field "$r" requests); ok=$(field "$r" code_200); ok=${ok:-0}
        echo "| $m | $res | $c | $(field "$r" rps) | $(field "$r" p50_ms) | $(field "$r" p95_ms) | $(field "$r" p99_ms) | $((tot - ok)) | $pms |"
        [ $c = 1 ] && echo "$m $(field "$r" p50_ms) $pms" >>"$W/one_client"
    done
    stop_server
done
echo
awk '{d=$2-$3; printf "1 client, %s: service p50 %.2f ms vs predict %.2f ms per image: %+.2f ms (%+.1f %%)\n", $1, $2, $3, d, 100*d/$3}' "$W/one_client"

echo
echo "overload: tiny model, 1 worker, --queue 4, 16 clients for ${D} s (--timeout-ms 5000):"
start_server "$TINY" "$W/tiny.adbank" --workers 1 --threads-per-worker "$T" --queue 4 --timeout-ms 5000
r=$(IMG=$W/test.png wrk -t 4 -c 16 -d "${D}s" --timeout 10s -s "$HERE/serve_load.lua" "http://127.0.0.1:$PORT" | grep '^RESULT')
tot=$(field "$r" requests); c200=$(field "$r" code_200); c503=$(field "$r" code_503)
c200=${c200:-0}; c503=${c503:-0}
errs=$(( $(field "$r" err_connect) + $(field "$r" err_read) + $(field "$r" err_write) + $(field "$r" err_timeout) ))
echo "  $tot answers: $c200 x 200, $c503 x 503, $((tot - c200 - c503)) other, $errs socket errors/timeouts; max latency $(field "$r" max_ms) ms"
[ $((tot - c200 - c503)) -eq 0 ] && [ "$errs" -eq 0 ] && echo "  PASS: only 200 and 503" || echo "  FAIL: other answers or errors"
stop_server

echo
echo "what the service adds: tiny model, 1 client, 300 requests, client wall time minus the"
echo "library stages the answer reports (decode + features + search + map), medians:"
start_server "$TINY" "$W/tiny.adbank" --workers 1 --threads-per-worker "$T"
$PY - "$PORT" "$W/test.png" <<'PYEOF'
import http.client, json, sys, time
port, img = int(sys.argv[1]), open(sys.argv[2], "rb").read()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
wall, lib = [], []
for i in range(330):
    t0 = time.perf_counter()
    c.request("POST", "/v1/banks/part/predict", body=img, headers={"Content-Type": "image/png"})
    r = c.getresponse(); d = json.loads(r.read())
    t1 = time.perf_counter()
    if i >= 30:  # warm
        tm = d["timings_ms"]
        wall.append(1e3 * (t1 - t0))
        lib.append(tm["decode"] + tm["features"] + tm["search"] + tm["map"])
med = lambda v: sorted(v)[len(v) // 2]
over = med([w - l for w, l in zip(wall, lib)])
print("  wall %.2f ms, library stages %.2f ms, service overhead %.2f ms (%.1f %% of the stages)"
      % (med(wall), med(lib), over, 100 * over / med(lib)))
PYEOF
stop_server

echo
echo "memory: tiny model, RSS of the server over 2,000 requests (1 client):"
start_server "$TINY" "$W/tiny.adbank" --workers 1 --threads-per-worker "$T"
$PY - "$PORT" "$SPID" "$W/test.png" <<'PYEOF'
import http.client, sys
port, pid, img = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read()
def rss():
    for l in open("/proc/%s/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1]) / 1024.0
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
marks = {}
for i in range(1, 2201):
    c.request("POST", "/v1/banks/part/predict?outputs=map,overlay", body=img, headers={"Content-Type": "image/png"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    if i in (200, 700, 1200, 1700, 2200):
        marks[i - 200] = rss()
print("  RSS MiB after the 200 warm-up requests + N more: " + ", ".join("%d: %.1f" % kv for kv in sorted(marks.items())))
g = marks[2000] - marks[0]
print("  growth over 2,000 requests: %+.1f MiB (%s)" % (g, "flat" if abs(g) < 0.05 * marks[0] + 2 else "GROWING"))
PYEOF
stop_server
