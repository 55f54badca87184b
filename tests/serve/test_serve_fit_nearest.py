#!/usr/bin/python3
"""The page's endpoints: GET / (the built-in page), POST /v1/banks/NAME/fit, POST
/v1/banks/NAME/references and outputs=nearest. Every refusal is checked with its code, and the
results against the CLI: a bank fitted by the service scores an image as `anomalydino predict`
with that bank file does, digit for digit; the service's nearest distance is the patch's grid
value; a bank grown through the service is the one `anomalydino bank add` makes."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import *  # noqa: E402,F401,F403
import serve_util as U  # noqa: E402

KEY = "fit-test-api-key-0123456789"
ADMIN = "fit-test-admin-key-0123456789"


def form(parts, boundary="----adfitboundary"):
    """parts: (field, filename or None, bytes)."""
    body = b""
    for field, fname, data in parts:
        disp = 'form-data; name="%s"' % field + ('; filename="%s"' % fname if fname else "")
        body += ("--%s\r\nContent-Disposition: %s\r\n" % (boundary, disp)).encode()
        if fname:
            body += b"Content-Type: image/png\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += ("--%s--\r\n" % boundary).encode()
    return body, "multipart/form-data; boundary=" + boundary


def main():
    tmp = U.tmpdir("serve_fit_nearest")
    banks = os.path.join(tmp, "banks")
    os.makedirs(banks)
    U.write(os.path.join(tmp, "key"), (KEY + "\n").encode())
    U.write(os.path.join(tmp, "admin"), (ADMIN + "\n").encode())
    imgs = []
    for i in range(5):
        p = os.path.join(tmp, "good%d.png" % i)
        U.write(p, U.png_bytes(96, 80, seed=10 + i))
        imgs.append(p)
    bad = os.path.join(tmp, "bad.png")
    U.write(bad, U.png_bytes(96, 80, seed=99, defect=True))
    base = U.fit(os.path.join(banks, "base.adbank"), imgs[:2], ["--resolution", "112"])

    s = U.Server(["-m", U.WEIGHTS, "--bank", "base=" + base, "--bank-dir", banks,
                  "--api-key-file", os.path.join(tmp, "key"),
                  "--admin-key-file", os.path.join(tmp, "admin"), "--workers", "2",
                  "--threads-per-worker", "1"], name="serve_fit", key=KEY)
    try:
        check(s.wait_ready(), "ready")
        # the page: public, HTML, no outside asset
        st, h, page = s.request("GET", "/", auth=False)
        check(st == 200 and h.get("content-type", "").startswith("text/html"), "GET / is the page (%s)" % st)
        text = page.decode()
        check("<title>anomalydino</title>" in text and "http://" not in text and "https://" not in text,
              "the page is self-contained (no http(s):// reference)")

        # nearest
        with open(bad, "rb") as f:
            bad_bytes = f.read()
        st, _, doc = s.predict("base", bad_bytes, "?outputs=grid,nearest&patch=5")
        check(st == 200 and "nearest" in doc["outputs"], "outputs=nearest answers (%s)" % st)
        if st == 200:
            n, g = doc["outputs"]["nearest"], doc["outputs"]["grid"]
            gv = g["data"][n["test_y"]][n["test_x"]]
            check(n["patch"] == 5 and n["test_x"] == 5 % g["shape"][1], "nearest names the patch asked for")
            check(abs(n["distance"] - gv) <= 1e-6, "nearest distance %.9g = grid value %.9g" % (n["distance"], gv))
            check(n["reference_name"] in ("good0.png", "good1.png") and 0 <= n["x"] < 100 and n["rotation"] % 45 == 0,
                  "nearest names the reference file, place and rotation: %s" % json.dumps(n))
        for q, what in (("?outputs=nearest", "no patch="), ("?outputs=nearest&patch=-1", "patch=-1"),
                        ("?outputs=nearest&patch=1.5", "patch=1.5"), ("?outputs=nearest&patch=100000", "patch past the grid")):
            st, _, doc = s.predict("base", bad_bytes, q)
            check(st == 400 and doc["error"]["type"] == "bad_request", "%s -> 400 (%s)" % (what, st))

        def post_form(path, parts, key=ADMIN):
            body, ct = form(parts)
            return s.json("POST", path, body, {"Content-Type": ct, "Authorization": "Bearer " + key})

        files = [("image", os.path.basename(p), open(p, "rb").read()) for p in imgs[:3]]
        # refusals
        st, _, d = post_form("/v1/banks/part_a/fit", files, key=KEY)
        check(st == 401, "fit with the API key (not admin) -> 401 (%s)" % st)
        st, _, d = post_form("/v1/banks/bad%20name/fit", files)
        check(st == 400, "fit with a bad name -> 400 (%s)" % st)
        st, _, d = post_form("/v1/banks/base/fit", files)
        check(st == 409 and d["error"]["type"] == "conflict", "fit of a served name -> 409 (%s)" % st)
        st, _, d = s.json("POST", "/v1/banks/part_a/fit", b"x", {"Content-Type": "image/png", "Authorization": "Bearer " + ADMIN})
        check(st == 415, "fit with a raw image body -> 415 (%s)" % st)
        st, _, d = post_form("/v1/banks/part_a/fit", [("resolution", None, b"112")])
        check(st == 400 and "image" in d["error"]["message"], "fit without images -> 400 (%s)" % st)
        st, _, d = post_form("/v1/banks/part_a/fit", files + [("resolution", None, b"7")])
        check(st == 400, "fit with resolution 7 -> 400 (%s)" % st)
        st, _, d = post_form("/v1/banks/part_a/fit", [("image", "x.png", b"not a png")])
        check(st == 422, "fit with a corrupt image -> 422 (%s)" % st)
        st, _, d = post_form("/v1/banks/part_a/fit", [("image", "bomb.png", U.png_bomb(30000))])
        check(st == 422 and "30000" in d["error"]["message"], "fit with a 30000^2 header -> 422 naming its size (%s: %s)" % (st, d["error"]["message"]))
        check(not os.path.exists(os.path.join(banks, "part_a.adbank")), "no bank file after the refusals")

        # a fit, then served
        st, _, d = post_form("/v1/banks/part_a/fit", files + [("resolution", None, b"112"), ("rotate", None, b"1")])
        check(st == 201 and d["bank"]["references"] == 3 and d["bank"]["name"] == "part_a",
              "fit -> 201 with the new bank (%s %s)" % (st, d and d.get("bank", d)))
        path = os.path.join(banks, "part_a.adbank")
        check(os.path.exists(path), "the bank is written into --bank-dir")
        check(not [f for f in os.listdir(banks) if f not in ("base.adbank", "part_a.adbank")],
              "no temporary file is left in --bank-dir: %s" % os.listdir(banks))
        st, _, lst = s.json("GET", "/v1/banks")
        check(st == 200 and "part_a" in [b["name"] for b in lst["banks"]], "part_a is in the bank list")
        st, _, d = post_form("/v1/banks/part_a/fit", files)
        check(st == 409, "fitting part_a again -> 409 (%s)" % st)
        st, _, doc = s.predict("part_a", bad_bytes)
        rc, out, err = U.run(["predict", "-m", U.WEIGHTS, "-b", path, "--format", "json", bad])
        cli = json.loads(out)
        cli_score = cli["results"][0]["score"] if isinstance(cli, dict) else cli[0]["score"]
        check(st == 200 and rc == 0 and repr(doc["score"]) == repr(cli_score),
              "the service-fitted bank scores as the CLI with its file: %r vs %r" % (doc and doc.get("score"), cli_score))

        # references: grow part_a by one image; the CLI's bank add of the same image agrees
        cli_copy = os.path.join(tmp, "cli_copy.adbank")
        with open(path, "rb") as f:
            U.write(cli_copy, f.read())
        add = [("image", os.path.basename(imgs[3]), open(imgs[3], "rb").read()), ("recalibrate", None, b"1")]
        st, _, d = post_form("/v1/banks/nosuch/references", add)
        check(st == 404, "references of an unknown bank -> 404 (%s)" % st)
        st, _, d = post_form("/v1/banks/part_a/references", add, key=KEY)
        check(st == 401, "references with the API key -> 401 (%s)" % st)
        st, _, d = post_form("/v1/banks/part_a/references", add)
        check(st == 200 and d["added"] == 1 and d["bank"]["references"] == 4,
              "references -> 200, 4 references (%s %s)" % (st, d))
        # one thread, as the service's workers here (the same thread count gives the same bits)
        rc, out, err = U.run(["bank", "add", "-m", U.WEIGHTS, "--threads", "1", "--recalibrate",
                              cli_copy, imgs[3]])
        check(rc == 0, "anomalydino bank add: %s" % err.strip()[-200:])
        rc1, i1, _ = U.run(["bank", "info", "--json", path])
        rc2, i2, _ = U.run(["bank", "info", "--json", cli_copy])
        if rc1 == 0 and rc2 == 0:
            a, b = json.loads(i1), json.loads(i2)
            ta, tb = a["threshold"]["value"], b["threshold"]["value"]
            check(a["rows"] == b["rows"] and ta is not None and repr(ta) == repr(tb),
                  "grown by the service = grown by the CLI (rows %s / %s, threshold %r / %r)"
                  % (a["rows"], b["rows"], ta, tb))
        st, _, doc2 = s.predict("part_a", bad_bytes)
        rc, out, _ = U.run(["predict", "-m", U.WEIGHTS, "-b", cli_copy, "--format", "json", bad])
        cli = json.loads(out)
        cli_score = cli["results"][0]["score"] if isinstance(cli, dict) else cli[0]["score"]
        check(st == 200 and repr(doc2["score"]) == repr(cli_score), "the grown bank serves at once and scores as the CLI's")
    finally:
        s.stop()

    # without --admin-key-file and --bank-dir: building banks is off
    s2 = U.Server(["-m", U.WEIGHTS, "--bank", "base=" + base], name="serve_fit_off")
    try:
        check(s2.wait_ready(), "ready (no admin key)")
        body, ct = form([("image", "a.png", open(imgs[0], "rb").read())])
        st, _, d = s2.json("POST", "/v1/banks/x/fit", body, {"Content-Type": ct})
        check(st == 403 and "--admin-key-file" in d["error"]["message"], "fit without an admin key configured -> 403 (%s)" % st)
    finally:
        s2.stop()
    U.finish()


if __name__ == "__main__":
    main()
