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

# ---- SCAFFOLD, Cyclic and per-site layers on a toy federation (test_strategy.c) ----------
# Three sites with quadratic losses f_i(w) = 0.5 |A_i w - b_i|^2, K full-batch gradient
# steps of rate lr per round from the global model.
A = [np.array([[1.0, 0.5, 0.0], [0.0, 1.0, -1.0]]), np.array([[2.0, 0.0, 1.0], [1.0, 1.0, 0.0]]),
     np.array([[0.5, -1.0, 0.5], [0.0, 0.0, 2.0]])]
b = [np.array([1.0, -1.0]), np.array([0.5, 2.0]), np.array([-1.0, 1.0])]
nex = np.array([20.0, 50.0, 30.0])
K, lr = 4, 0.05
grad = lambda i, w: A[i].T @ (A[i] @ w - b[i])
x0 = np.array([0.1, -0.2, 0.3])

# SCAFFOLD (Karimireddy et al. 2020, option II), server rate 0.5, three rounds
x = x0.copy(); c = np.zeros(3); ci = [np.zeros(3) for _ in range(3)]
for r in range(3):
    dy, dc = [], []
    for i in range(3):
        y = x.copy()
        for _ in range(K):
            y = y - lr * (grad(i, y) - ci[i] + c)
        cnew = ci[i] - c + (x - y) / (K * lr)
        dy.append(y - x); dc.append(cnew - ci[i]); ci[i] = cnew
    x = x + 0.5 * sum(n * d for n, d in zip(nex, dy)) / nex.sum()
    c = c + sum(n * d for n, d in zip(nex, dc)) / nex.sum()
print("scaffold")
print("  x", ", ".join("%.12g" % v for v in x))
print("  c", ", ".join("%.12g" % v for v in c))

# Cyclic: sites in the order 2, 0, 1, 1, 2, 0; w <- the site's model
w = x0.copy()
for i in [2, 0, 1, 1, 2, 0]:
    for _ in range(K):
        w = w - lr * grad(i, w)
print("cyclic")
print("  w", ", ".join("%.12g" % v for v in w))

# Per-site layers: coordinate 2 stays at each site, FedAvg on the others, three rounds
g = x0.copy(); own = [x0[2]] * 3
for r in range(3):
    ups = []
    for i in range(3):
        y = g.copy(); y[2] = own[i]
        start = y.copy()
        for _ in range(K):
            y = y - lr * grad(i, y)
        own[i] = y[2]
        d = y - start; d[2] = 0.0
        ups.append(d)
    g = g + sum(n * d for n, d in zip(nex, ups)) / nex.sum()
print("local")
print("  g", ", ".join("%.12g" % v for v in g))
print("  own", ", ".join("%.12g" % v for v in own))
