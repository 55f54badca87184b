#!/usr/bin/env python3
"""Peer benchmark of the ViT-S/14 forward pass: ours (bench_backbone), ONNX Runtime
(bench/peer_ort.js on onnxruntime-node) and PyTorch (bench/torch_dinov2.py), interleaved in one
run, plus the OpenBLAS sgemm ceiling (bench_attention). Not a test; run it through
bench/peer_bench.sh, which installs the peers and exports the ONNX files first.

    python3 bench/peer_bench.py --build build --onnx DIR --ort DIR
        [--sizes 224,448,672] [--threads 1,2] [--rounds 5] [--runs 2] [--json FILE] [--spin]
    python3 bench/peer_bench.py --table FILE      (the table again from a --json FILE)

Every round starts a fresh process per (size, threads, engine), the engine order rotating from
round to round; each process warms up once and reports its best of --runs. Over the rounds the
table gives the best and the median per engine, the ratios ours / ONNX Runtime and ours /
PyTorch (time: below 1 means we are faster), and our effective GFLOP/s as a share of the sgemm
ceiling (the best GFLOP/s of single-threaded OpenBLAS sgemm on the block's linear-layer shapes,
split over the threads as the forward pass splits them; on AVX-512 CPUs also with
OPENBLAS_CORETYPE=SkylakeX, OpenBLAS's AVX-512 kernels, and the better of the two counts).
Unless --spin, every engine is told not to spin while waiting (shared cores).
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BEST = re.compile(r"threads (\d+): ([0-9.]+) s/image best")


def run(cmd, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                       timeout=900)
    if p.returncode != 0:
        sys.exit("peer_bench: %s failed (%d): %s" % (" ".join(cmd), p.returncode,
                                                     p.stderr.strip()[-500:]))
    return p.stdout


def best_of(out, what):
    m = BEST.search(out)
    if not m:
        sys.exit("peer_bench: could not read the %s timing from: %s" % (what, out[-300:]))
    return float(m.group(2))


def machine():
    name = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        txt = open("/proc/cpuinfo").read()
        fl = re.search(r"^flags\s*:(.*)$", txt, re.M).group(1).split()
        flags = ", AVX-512" if "avx512f" in fl else ", AVX2" if "avx2" in fl else ""
    except (OSError, AttributeError):
        pass
    return "%s%s, %d CPUs, %s" % (name, flags, os.cpu_count() or 0, platform.platform())


def table(t, ceil, gflop, sizes, threads, rounds, runs):
    """Prints the markdown table; returns its rows (for the JSON)."""
    engines = ["ours", "ort", "torch"]
    rows = []
    print()
    print("ViT-S/14, seconds per image, best / median of %d fresh processes (each the best of "
          "%d runs after a warm-up); 'paired' = median over the rounds of ours / ORT within "
          "the round" % (rounds, runs))
    print("| size | threads | ours | ONNX Runtime | PyTorch | ours/ORT best (median; paired) "
          "| ours/PyTorch best | sgemm ceiling | ours % of ceiling |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in sizes:
        for th in threads:
            o, x, p = (t[(e, s, th)] for e in engines)
            ob, xb, pb = min(o), min(x), min(p)
            om, xm, pm = statistics.median(o), statistics.median(x), statistics.median(p)
            paired = statistics.median([oi / xi for oi, xi in zip(o, x)])
            cb = max(ceil.get((s, th), [float("nan")]))
            eff = gflop.get(s, float("nan")) / ob
            row = {"size": s, "threads": th, "ours_best": ob, "ours_median": om, "ort_best": xb,
                   "ort_median": xm, "torch_best": pb, "torch_median": pm,
                   "ours_over_ort_best": ob / xb, "ours_over_ort_median": om / xm,
                   "ours_over_ort_paired_median": paired,
                   "ours_over_torch_best": ob / pb, "sgemm_ceiling_gflops": cb,
                   "ours_gflops": eff, "ours_share_of_ceiling": eff / cb,
                   "samples": {e: t[(e, s, th)] for e in engines},
                   "ceiling_samples": ceil.get((s, th), []), "gflop": gflop.get(s)}
            rows.append(row)
            print("| %d | %d | %.3f / %.3f | %.3f / %.3f | %.3f / %.3f | %.2fx (%.2fx; %.2fx) "
                  "| %.2fx | %.0f GFLOP/s | %.0f %% |"
                  % (s, th, ob, om, xb, xm, pb, pm, ob / xb, om / xm, paired, ob / pb, cb,
                     100 * eff / cb))
    return rows


def reprint(path):
    """--table FILE: the table again from a JSON this script wrote."""
    d = json.load(open(path))
    t, ceil, gflop, sizes, threads = {}, {}, {}, [], []
    for r in d["rows"]:
        s, th = r["size"], r["threads"]
        sizes += [s] if s not in sizes else []
        threads += [th] if th not in threads else []
        for e, v in r["samples"].items():
            t[(e, s, th)] = v
        ceil[(s, th)] = r.get("ceiling_samples") or [r["sgemm_ceiling_gflops"]]
        gflop[s] = r.get("gflop") or r["ours_gflops"] * r["ours_best"]
    print("machine: %s" % d["machine"])
    print("load average: %.2f at start, %.2f at end" % (d["load_start"][0], d["load_end"][0]))
    table(t, ceil, gflop, sizes, threads, d["rounds"], d["runs"])


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        return reprint(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--onnx", required=True, help="folder of dinov2_s_<size>.onnx")
    ap.add_argument("--ort", required=True, help="folder holding node_modules/onnxruntime-node")
    ap.add_argument("--sizes", default="224,448,672")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", default="")
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--spin", action="store_true",
                    help="leave the engines' thread pools spinning while they wait (default: "
                         "OMP_WAIT_POLICY=passive for ours and PyTorch, allow_spinning 0 for ORT: "
                         "the setting for shared cores)")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    if a.rounds < 1 or a.runs < 1 or not sizes or not threads:
        sys.exit("peer_bench: bad --rounds, --runs, --sizes or --threads")
    ours_bin = os.path.join(a.build, "bench_backbone")
    ceil_bin = os.path.join(a.build, "bench_attention")
    for p in [ours_bin, ceil_bin] + [os.path.join(a.onnx, "dinov2_s_%d.onnx" % s) for s in sizes]:
        if not os.path.exists(p):
            sys.exit("peer_bench: %s is missing (build first / run bench/peer_bench.sh)" % p)

    env = dict(os.environ, ORT_NODE_DIR=a.ort)
    if not a.spin:
        env.update(OMP_WAIT_POLICY="passive", ORT_NO_SPIN="1")
    avx512 = "avx512f" in open("/proc/cpuinfo").read()
    engines = ["ours", "ort", "torch"]
    t = {}  # (engine, size, threads) -> [seconds], one per round
    ceil = {}  # (size, threads) -> [GFLOP/s]
    gflop = {}
    load0 = os.getloadavg()
    t_start = time.time()
    print("machine: %s" % machine())
    print("load average at start: %.2f %.2f %.2f" % load0)
    print("waiting threads: %s" % ("spin (engine defaults)" if a.spin else
                                   "passive (OMP_WAIT_POLICY=passive, ORT allow_spinning 0)"))
    sys.stdout.flush()
    for r in range(a.rounds):
        for s in sizes:
            for th in threads:
                order = engines[r % 3:] + engines[:r % 3]
                for e in order:
                    if e == "ours":
                        out = run([ours_bin, "--model", "s", "--size", str(s), "--runs",
                                   str(a.runs), "--threads", str(th)], env)
                        m = re.search(r"([0-9.]+) GFLOP per image", out)
                        gflop[s] = float(m.group(1)) if m else float("nan")
                    elif e == "ort":
                        out = run(["node", os.path.join(HERE, "peer_ort.js"),
                                   os.path.join(a.onnx, "dinov2_s_%d.onnx" % s), str(s), str(th),
                                   str(a.runs)], env)
                    else:
                        out = run([a.python, os.path.join(HERE, "torch_dinov2.py"), "--model", "s",
                                   "--size", str(s), "--runs", str(a.runs), "--threads", str(th)],
                                  env)
                    t.setdefault((e, s, th), []).append(best_of(out, e))
                tok = 1 + (s // 14) ** 2
                out = run([ceil_bin, "--tokens", str(tok), "--threads", str(th), "--runs",
                           str(a.runs)], env)
                m = re.search(r"linear layers ([0-9.]+) GFLOP/s", out)
                if m:
                    ceil.setdefault((s, th), []).append(float(m.group(1)))
                if avx512:  # OpenBLAS's own AVX-512 kernels, which it does not pick on Zen 5
                    out = run([ceil_bin, "--tokens", str(tok), "--threads", str(th), "--runs",
                               str(a.runs)], dict(env, OPENBLAS_CORETYPE="SkylakeX"))
                    m = re.search(r"linear layers ([0-9.]+) GFLOP/s", out)
                    if m:
                        ceil.setdefault((s, th), []).append(float(m.group(1)))
        print("round %d/%d done (%.0f s)" % (r + 1, a.rounds, time.time() - t_start))
        sys.stdout.flush()
    load1 = os.getloadavg()

    rows = table(t, ceil, gflop, sizes, threads, a.rounds, a.runs)
    print("load average at end: %.2f %.2f %.2f (%.0f s in all)" % (load1 + (time.time() - t_start,)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), "load_start": load0, "load_end": load1,
                       "rounds": a.rounds, "runs": a.runs, "rows": rows}, f, indent=1)
        print("wrote %s" % a.json)


if __name__ == "__main__":
    main()
