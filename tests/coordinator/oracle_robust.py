#!/usr/bin/python3
"""Reference for test_robust.c: random site updates (honest ~ N(mu, 0.1) per coordinate)
with a minority of adversarial sites, and numpy's median / scipy.stats.trim_mean of each
coordinate (numpy sort if scipy is missing). Writes OUT as whitespace-separated text:
  ncases
  then per case: k n f beta, the k*n float32 updates (row = site), the honest mean (n),
  the median (n), the trimmed mean (n), the plain mean (n).
Run: /usr/bin/python3 tests/coordinator/oracle_robust.py OUT"""
import sys
import numpy as np

try:
    from scipy.stats import trim_mean
except ImportError:  # same rule as scipy: cut int(beta * k) from each end
    def trim_mean(a, beta, axis=0):
        s = np.sort(a, axis=axis)
        c = int(beta * a.shape[axis])
        return s[c:a.shape[axis] - c].mean(axis=axis)

rng = np.random.default_rng(20261128)
cases = []
# (sites, params, adversarial sites, beta, attack)
for k, n, f, beta, attack in [(5, 64, 1, 0.2, "huge"), (7, 100, 2, 0.3, "flip"),
                              (10, 50, 3, 0.3, "huge"), (4, 33, 1, 0.25, "flip"),
                              (9, 80, 0, 0.1, "none"), (20, 40, 6, 0.3, "mixed")]:
    mu = rng.normal(0, 1, n)
    u = (mu + rng.normal(0, 0.1, (k, n))).astype(np.float32)
    for i in range(f):
        if attack == "huge" or (attack == "mixed" and i % 2 == 0):
            u[i] = (rng.normal(0, 1, n) * 1e6).astype(np.float32)
        else:
            u[i] = (-10.0 * mu).astype(np.float32)
    honest = u[f:].astype(np.float64).mean(axis=0)
    d = u.astype(np.float64)
    cases.append((k, n, f, beta, u, honest, np.median(d, axis=0), trim_mean(d, beta, axis=0),
                  d.mean(axis=0)))

with open(sys.argv[1], "w") as fh:
    fh.write("%d\n" % len(cases))
    for k, n, f, beta, u, *vecs in cases:
        fh.write("%d %d %d %.17g\n" % (k, n, f, beta))
        fh.write(" ".join("%.9g" % x for x in u.ravel()) + "\n")
        for v in vecs:
            fh.write(" ".join("%.17g" % x for x in v) + "\n")
