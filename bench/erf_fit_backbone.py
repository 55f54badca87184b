#!/usr/bin/env python3
"""Derives the erf approximation of src/backbone/kernels.c (not run by the build or the tests).

erf(x) ~ x * P(x^2) / Q(x^2) on |x| <= 4, P of degree 5, Q of degree 6 with Q(0) = 1 (beyond 4,
erf rounds to +-1 in float32). The coefficients come from a linearised least-squares fit,
x P(z) - erf(x) Q(z) = 0 over 40 000 points, weighted by 1 / (erf(x) Q_prev(x)) for relative
error and re-weighted towards the worst points each round (a Lawson-style iteration). Then the
float32 evaluation (Horner, coefficients rounded to float32) is checked against math.erf.

    /usr/bin/python3 bench/erf_fit_backbone.py
"""
import math

import numpy as np

X_MAX = 4.0
DEG_P, DEG_Q = 5, 6


def fit(xs, y, iters=30):
    w = np.ones_like(xs)
    z = xs * xs
    for it in range(iters):
        a = np.hstack([np.stack([xs * z ** i for i in range(DEG_P + 1)], 1),
                       np.stack([-y * z ** j for j in range(1, DEG_Q + 1)], 1)])
        wt = (w / y)[:, None]
        c, *_ = np.linalg.lstsq(a * wt, y * wt[:, 0], rcond=None)
        p, q = c[:DEG_P + 1], np.concatenate([[1.0], c[DEG_P + 1:]])
        qv = np.polyval(q[::-1], z)
        err = np.abs(xs * np.polyval(p[::-1], z) / qv / y - 1)
        w = (1 / np.abs(qv)) * (1 + err / err.max() * it)
    return p, q


def eval_f32(p, q, x):
    f = np.float32
    z = (x * x).astype(f)
    pv = f(p[-1])
    for c in p[-2::-1]:
        pv = (pv * z + f(c)).astype(f)
    qv = f(q[-1])
    for c in q[-2::-1]:
        qv = (qv * z + f(c)).astype(f)
    return np.clip((x * pv / qv).astype(f), -1, 1)


def main():
    xs = np.linspace(1e-4, X_MAX, 40000)
    y = np.array([math.erf(v) for v in xs])
    p, q = fit(xs, y)
    print("erf_p:", ", ".join("%.9ef" % v for v in p))
    print("erf_q:", ", ".join("%.9ef" % v for v in q))
    xt = np.linspace(-X_MAX, X_MAX, 400001).astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in xt])
    d = np.abs(eval_f32(p, q, xt) - ref)
    print("float32 evaluation: max abs error %.3g at x = %.5g" % (d.max(), xt[np.argmax(d)]))


if __name__ == "__main__":
    main()
