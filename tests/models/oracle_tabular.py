#!/usr/bin/python3
"""Reference values for test_tabular.c: torch.optim.SGD (momentum 0) and torch.optim.Adam
(bias-corrected, eps after the square root, L2 weight decay added to the gradient) as the
PyTorch documentation states them, in float64 with numpy.
Run: /usr/bin/python3 tests/models/oracle_tabular.py"""
import numpy as np

w0 = np.array([0.5, -1.0, 2.0])
G = np.array([[0.1, -0.2, 0.3], [-0.5, 0.0, 1.0], [0.2, 0.2, -0.1]], dtype=np.float32).astype(float)
lr, wd, b1, b2, eps = 0.1, np.float32(0.01).item(), 0.9, 0.999, 1e-8

w = w0.copy()
for g in G:
    w = w - lr * (g + wd * w)
print("sgd", ", ".join("%.12g" % v for v in w))

w = w0.copy(); m = np.zeros(3); v = np.zeros(3)
for t, g in enumerate(G, 1):
    g = g + wd * w
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
print("adam", ", ".join("%.12g" % v for v in w))
