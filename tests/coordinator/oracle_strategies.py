#!/usr/bin/python3
"""Reference values for test_strategy.c: Reddi et al. 2021 Algorithm 2 (FedAdam, FedYogi,
FedAdagrad, no bias correction, v0 = tau^2) and FedAvg, in float64 with numpy.
Run: /usr/bin/python3 tests/coordinator/oracle_strategies.py"""
import numpy as np

w0 = np.array([0.5, -1.0, 2.0, 0.0, 3.0])
# three rounds of three sites: updates and example counts
U = [np.array([[0.1, -0.2, 0.05, 0.0, 1.0], [0.3, 0.1, -0.05, 0.2, -1.0], [-0.1, 0.0, 0.0, 0.4, 0.5]]),
     np.array([[0.02, 0.02, -0.3, 0.1, 0.0], [0.0, -0.4, 0.1, 0.1, 0.2], [0.05, 0.05, 0.05, -0.6, 0.3]]),
     np.array([[-0.2, 0.3, 0.0, 0.01, -0.5], [0.1, 0.1, 0.1, 0.1, 0.1], [0.0, -0.1, 0.2, 0.0, 0.0]])]
N = [np.array([10., 30., 60.]), np.array([5., 5., 90.]), np.array([100., 1., 1.])]
eta, b1, b2, tau = 0.1, 0.9, 0.99, 1e-3

def run(kind):
    w = w0.copy(); m = np.zeros(5); v = np.full(5, tau * tau)
    for u, n in zip(U, N):
        d = (n[:, None] * u).sum(0) / n.sum()
        if kind == "fedavg":
            w = w + 1.0 * d; continue
        m = b1 * m + (1 - b1) * d
        if kind == "fedadagrad": v = v + d * d
        elif kind == "fedyogi": v = v - (1 - b2) * d * d * np.sign(v - d * d)
        else: v = b2 * v + (1 - b2) * d * d
        w = w + eta * m / (np.sqrt(v) + tau)
    return w, m, v

for k in ["fedavg", "fedadam", "fedyogi", "fedadagrad"]:
    w, m, v = run(k)
    print(k)
    print("  w", ", ".join("%.12g" % x for x in w))
    print("  m", ", ".join("%.12g" % x for x in m))
    print("  v", ", ".join("%.12g" % x for x in v))
