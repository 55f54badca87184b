#!/usr/bin/python3
"""CPU-budgeted libFuzzer campaign (the third campaign of docs/fuzzing.md), run from the repo root.

fuzz/campaign.py LOG QUEUE_FILE   (after make fuzz-build)
QUEUE_FILE lines: TARGET CPU_MINUTES [BUILD_DIR] (default build-fuzz).  Two lanes.  Pause: touch /tmp/fuzz.pause (running
fuzzers get SIGINT, resume when the file is gone).  Stop: touch /tmp/fuzz.stop.
Each run appends a JSON line to LOG.
"""
import json, os, signal, subprocess, sys, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = REPO + "/build-fuzz"
LANES = int(os.environ.get("LANES", "2"))
TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / TCK
    except OSError:
        return None


def start(key, run_no):
    t, _, b = key.partition("@")
    build = f"{REPO}/{b}" if b else BUILD
    work = f"{build}/fuzz-work/{t}"
    art = f"{build}/fuzz-artifacts/{t}"
    os.makedirs(work, exist_ok=True)
    os.makedirs(art, exist_ok=True)
    args = ["nice", "-n", "19", f"{build}/fuzz/fuzz_{t}", "-max_total_time=100000", "-timeout=10",
            "-report_slow_units=1", "-rss_limit_mb=2048", "-malloc_limit_mb=256",
            "-close_fd_mask=3", "-print_final_stats=1", f"-artifact_prefix={art}/"]
    if os.path.exists(f"{REPO}/fuzz/{t}.dict"):
        args.append(f"-dict={REPO}/fuzz/{t}.dict")
    args += [work, f"{REPO}/fuzz/corpus/{t}"]
    if os.path.isdir(f"{REPO}/fuzz/regressions/{t}"):
        args.append(f"{REPO}/fuzz/regressions/{t}")
    log = open(f"{build}/campaign3-{t}-{run_no}.log", "w")
    p = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    return {"t": key, "art": art, "p": p, "t0": time.time(), "run": run_no, "log": log.name,
            "arts0": set(os.listdir(art)), "cpu": 0.0}


def main():
    logpath, queue = sys.argv[1], sys.argv[2]
    todo = []
    for line in open(queue):
        if line.strip() and not line.startswith("#"):
            f = line.split()
            todo.append([f[0] + ("@" + f[2] if len(f) > 2 else ""), float(f[1]) * 60.0])
    used = {t: 0.0 for t, _ in todo}
    runs = {t: 0 for t, _ in todo}
    if os.path.exists(logpath):  # resume: CPU already spent per target
        for line in open(logpath):
            rec = json.loads(line)
            if rec["target"] in used:
                used[rec["target"]] += rec["cpu_s"]
                runs[rec["target"]] = max(runs[rec["target"]], rec["run"])
    budget = {t: b for t, b in todo}
    queue_order = [t for t, _ in todo]
    running = []
    done = set()
    out = open(logpath, "a")

    def finish(r, why):
        p = r["p"]
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        used[r["t"]] += r["cpu"]
        art = r["art"]
        new = sorted(set(os.listdir(art)) - r["arts0"])
        finding = [a for a in new if not a.startswith("slow-unit-")]
        rec = {"target": r["t"], "run": r["run"], "why": why, "rc": p.returncode,
               "cpu_s": round(r["cpu"], 1), "wall_s": round(time.time() - r["t0"], 1),
               "used_total_s": round(used[r["t"]], 1), "new_artifacts": new, "log": r["log"],
               "end": time.strftime("%H:%M:%S")}
        out.write(json.dumps(rec) + "\n")
        out.flush()
        if finding or (why == "exited"):
            done.add(r["t"])  # a finding (or an unexpected exit): leave it for a human
        return rec

    while True:
        if os.path.exists("/tmp/fuzz.stop"):
            for r in running:
                finish(r, "stopped")
            return
        if os.path.exists("/tmp/fuzz.pause"):
            for r in running:
                finish(r, "paused")
            running = []
            time.sleep(2)
            continue
        for r in list(running):
            c = cpu_s(r["p"].pid)
            if c is not None:
                r["cpu"] = c
            if r["p"].poll() is not None:
                running.remove(r)
                finish(r, "exited")
            elif used[r["t"]] + r["cpu"] >= budget[r["t"]]:
                running.remove(r)
                finish(r, "budget")
                done.add(r["t"])
        active = {r["t"] for r in running}
        for t in queue_order:
            if len(running) >= LANES:
                break
            if t in done or t in active or used[t] >= budget[t]:
                continue
            runs[t] += 1
            running.append(start(t, runs[t]))
            active.add(t)
        if not running:
            return
        time.sleep(3)


if __name__ == "__main__":
    main()
