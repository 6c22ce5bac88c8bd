# Independent privacy oracle of tests/fed/dp_test.sh (numpy/scipy, not fedfuse's accountant):
# RDP of the sampled Gaussian (Mironov, Talwar, Zhang 2019) at dp_accounting's default orders
# and the improved (epsilon, delta) conversion. Imported, or exec'd from a copy, by the test.
import json, math, subprocess, sys
import numpy as np
from scipy import special
orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]
def log_a(q, s, a):  # Mironov, Talwar, Zhang 2019: A_a of the sampled Gaussian, in logs
    if float(a).is_integer():
        a = int(a)
        t = [math.log(special.binom(a, i)) + i * math.log(q) + (a - i) * math.log(1 - q)
             + (i * i - i) / (2 * s * s) for i in range(a + 1)]
        return float(special.logsumexp(t))
    # fractional: Sec. 3.3 series, every term positive (dp_accounting since 2024)
    z0, terms, i = s * s * math.log(1 / q - 1) + 0.5, [], 0
    while True:
        c = math.log(abs(special.binom(a, i))); j = a - i
        e0 = special.log_ndtr(-(i - z0) / s)   # log(erfc(x/sqrt2)/2) = log_ndtr(-x)
        e1 = special.log_ndtr(-(z0 - j) / s)
        s0 = c + i * math.log(q) + j * math.log(1 - q) + (i * i - i) / (2 * s * s) + e0
        s1 = c + j * math.log(q) + i * math.log(1 - q) + (j * j - j) / (2 * s * s) + e1
        terms += [s0, s1]; i += 1
        if max(s0, s1) < -30:
            return float(special.logsumexp(terms))
def eps_from_rdp(rdp, delta):  # dp_accounting's improved conversion (Balle et al. 2020 Thm 21)
    best = math.inf
    for a, r in zip(orders, rdp):
        if a <= 1.01:
            continue
        if delta ** 2 + math.expm1(-r) > 0:
            return 0.0
        best = min(best, r + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1))
    return best
def eps(q, s, steps, delta):  # the sampled Gaussian over `steps` steps
    return eps_from_rdp([steps * log_a(q, s, a) / (a - 1) for a in orders], delta)
