#!/usr/bin/python3
"""deploy/ cannot be built or applied here, so check what can be checked: the Kubernetes
manifests parse as YAML and fit together, they name the service's real endpoints and flags
(compared with `anomalydino serve --help` and a live /health probe of the binary), and the
container file is multi-stage on debian:12-slim with a non-root user and read-only mounts.

Environment: AD_BIN, AD_SRC (the repository). Prints 'N passed, M failed' last."""
import os
import re
import subprocess
import sys

import yaml

BIN = os.environ["AD_BIN"]
SRC = os.environ.get("AD_SRC") or os.path.abspath(os.path.join(os.environ["AD_TEST_DATA"], "..", ".."))
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + what)
    else:
        failed += 1
        print("FAIL " + what)


def load(name):
    with open(os.path.join(SRC, "deploy", "kubernetes", name)) as f:
        return list(yaml.safe_load_all(f))


help_text = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=30)
help_all = help_text.stdout + help_text.stderr
check(help_text.returncode == 0, "anomalydino serve --help exits 0")
flags = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_all))

dep, = load("deployment.yaml")
svc, = load("service.yaml")
hpa, = load("hpa.yaml")
check(dep["kind"] == "Deployment" and dep["apiVersion"] == "apps/v1", "deployment.yaml is an apps/v1 Deployment")
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
args = c["args"]
used = [a for a in args if a.startswith("--")]
unknown = [a for a in used if a not in flags]
check(not unknown, "every flag in the Deployment exists in serve --help: %s" % (unknown or used))
check("-m" in args, "the Deployment names the weights with -m")
listen = args[args.index("--listen") + 1]
port = int(listen.rsplit(":", 1)[1])
check(listen.startswith("0.0.0.0:"), "inside the pod it listens on all interfaces (%s)" % listen)
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
check(ports.get("http") == port, "containerPort http = the --listen port %d" % port)
live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
check(live["path"] == "/health/live" and ready["path"] == "/health/ready",
      "probes: liveness %s, readiness %s" % (live["path"], ready["path"]))
check(live["port"] == "http" and ready["port"] == "http", "probes use the http port")
mounts = {m["name"]: m for m in c["volumeMounts"]}
check(all(m.get("readOnly") for m in mounts.values()), "weights, banks and keys are mounted read-only")
for a in args:
    if a.startswith("/"):
        check(any(a.startswith(m["mountPath"] + "/") for m in mounts.values()),
              "path %s lies on a mounted volume" % a)
    if "=" in a and a.split("=", 1)[1].startswith("/"):
        path = a.split("=", 1)[1]
        check(any(path.startswith(m["mountPath"] + "/") for m in mounts.values()),
              "bank path %s lies on a mounted volume" % path)
sec = pod.get("securityContext", {})
check(sec.get("runAsNonRoot") is True and sec.get("runAsUser", 0) != 0, "the pod runs as a non-root user")
check(dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"],
      "the Deployment's selector matches its pods")

check(svc["kind"] == "Service" and svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"],
      "the Service selects the Deployment's pods")
check(svc["spec"]["ports"][0]["targetPort"] in ("http", port), "the Service targets the http port")
check(hpa["kind"] == "HorizontalPodAutoscaler" and hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
      and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment", "the autoscaler scales this Deployment")
check(1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], "the autoscaler's replica range is sane")

with open(os.path.join(SRC, "deploy", "Containerfile")) as f:
    cf = f.read()
froms = re.findall(r"^FROM\s+(\S+)", cf, re.M)
check(len(froms) >= 2 and all(f == "debian:12-slim" or f.startswith("debian:12-slim") for f in froms[:1]) and
      froms[-1] == "debian:12-slim", "multi-stage on debian:12-slim: %s" % froms)
check(re.search(r"^COPY --from=", cf, re.M) is not None, "the final stage copies the build stage's install")
user = re.findall(r"^USER\s+(\S+)", cf, re.M)
check(user and not user[-1].startswith("0") and user[-1] != "root", "the image runs as a non-root user (%s)" % user)
check(re.search(r'^ENTRYPOINT \["anomalydino", "serve"\]', cf, re.M) is not None, "the entry point is anomalydino serve")
exposed = re.findall(r"^EXPOSE\s+(\d+)", cf, re.M)
check(exposed == [str(port)], "EXPOSE %s matches the manifests' port" % exposed)
check(":ro" in cf, "the documented run mounts weights and banks read-only")

# the probe paths answer 200 on a running service
def probe_live_service():
    import tempfile, time, urllib.request
    data = os.path.join(SRC, "tests", "data")
    model = os.path.join(data, "dinov2", "tiny.safetensors")
    good = os.path.join(SRC, "samples", "good")
    with tempfile.TemporaryDirectory() as tmp:
        bank = os.path.join(tmp, "b.adbank")
        subprocess.run([BIN, "fit", "-m", model, "-o", bank, "--resolution", "112",
                        os.path.join(good, "washer_01.png"), os.path.join(good, "washer_02.png")],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        p = subprocess.Popen([BIN, "serve", "-m", model, "--bank", "b=" + bank, "--listen", "127.0.0.1:0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = p.stdout.readline()  # 'anomalydino serve: listening on http://127.0.0.1:PORT'
            m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            check(m is not None, "the service starts and prints its address")
            if not m:
                return
            base = "http://127.0.0.1:" + m.group(1)
            for path in (live["path"], ready["path"]):
                code = None
                for _ in range(300):  # <= 30 s, ready waits for the warm-up inference
                    try:
                        with urllib.request.urlopen(base + path, timeout=2) as r:
                            code = r.status
                    except urllib.error.HTTPError as e:
                        code = e.code
                    except OSError:
                        code = None
                    if code == 200:
                        break
                    time.sleep(0.1)
                check(code == 200, "probe %s answers 200 on the running service" % path)
        finally:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


probe_live_service()
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
