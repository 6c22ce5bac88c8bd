#!/usr/bin/python3
"""Reference values for test_loss.c (and the C-index in tests/eval/test_cindex.c): the losses
and their gradients in float64 with numpy/scipy, written from their definitions, not from
loss.c's algorithms (the Cox risk sets by brute force over all pairs, the gradient of the
Breslow loss by its closed form, the C-index by enumerating pairs).
Run: /usr/bin/python3 tests/models/oracle_loss.py"""
import numpy as np
from scipy.special import expit, logsumexp, log_softmax, softmax

def fmt(a):
    return ", ".join("%.12g" % x for x in np.ravel(a))

z = np.array([0.3, -1.2, 2.5, 0.0, -4.0, 7.5])
y = np.array([1.0, 0.0, 1.0, 0.5, 0.0, 0.0])
bce = np.mean(-y * np.log(expit(z)) - (1 - y) * np.log(expit(-z)))
print("bce", "%.12g" % bce)
print("dbce", fmt((expit(z) - y) / len(z)))

L = np.array([[0.5, -1.0, 2.0], [3.0, 3.0, -2.0], [-0.1, 0.2, 0.3], [10.0, -10.0, 0.0]])
lab = np.array([2, 0, 1, 1])
ce = -np.mean(log_softmax(L, axis=1)[np.arange(4), lab])
g = softmax(L, axis=1); g[np.arange(4), lab] -= 1
print("ce", "%.12g" % ce)
print("dce", fmt(g / 4))

p = np.array([0.5, -1.0, 2.0, 0.25, 3.0, -2.0]); t = np.array([1.0, 0.0, 1.5, 0.25, -1.0, -2.5])
print("mse", "%.12g" % np.mean((p - t) ** 2))
print("dmse", fmt(2 * (p - t) / len(p)))

# Cox with ties: times 5 and 2 are tied, censored rows among them.
s = np.array([0.2, -0.5, 1.0, 0.3, -1.5, 0.8, 0.0, 2.0])
T = np.array([5.0, 2.0, 5.0, 7.0, 2.0, 1.0, 5.0, 9.0])
E = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
n = len(s)
risk = T[None, :] >= T[:, None]          # risk[i, j]: j in i's risk set
lse = np.array([logsumexp(s[risk[i]]) for i in range(n)])
cox = np.sum(E * (lse - s)) / n
grad = np.zeros(n)
for i in range(n):
    if E[i]:
        w = np.where(risk[i], np.exp(s - lse[i]), 0.0)
        grad += w
grad = (grad - E) / n
print("cox", "%.12g" % cox)
print("dcox", fmt(grad))

# Harrell's C-index (lifelines' rule: a censored row tied with an event time lived longer)
num = den = 0.0
for i in range(n):
    for j in range(n):
        if i == j or not E[i]:
            continue
        if T[i] < T[j] or (T[i] == T[j] and not E[j]):
            den += 1
            num += 1.0 if s[i] > s[j] else (0.5 if s[i] == s[j] else 0.0)
print("cindex", "%.12g" % (num / den))
