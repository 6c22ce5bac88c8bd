#!/usr/bin/python3
"""Oracle for the distributed discrete Gaussian accounting tests (mpmath, 40 digits).

An independent implementation of KLS21 Thm 1 + Prop. 14 / Eq. 17 (simplified, no L1 term) as
written in docs/privacy.md, composed over rounds at dp_accounting's default orders and
converted with the improved conversion (dp_accounting compute_epsilon).
Run: /usr/bin/python3 tests/privacy/oracle_ddg.py
"""
import mpmath as mp

mp.mp.dps = 40
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]


def eps_ddg(c, sigma, gamma, d, n, beta, rounds, delta):
    c, sigma, gamma, beta, delta = map(mp.mpf, (c, sigma, gamma, beta, delta))
    t1 = (c + gamma * mp.sqrt(d))**2
    if beta > 0:
        t2 = c**2 + gamma**2 * d / 4 + mp.sqrt(2 * mp.log(1 / beta)) * gamma * \
            (c + gamma * mp.sqrt(d) / 2)
        sens2 = min(t1, t2)
    else:
        sens2 = t1
    tau = 10 * mp.fsum(mp.exp(-2 * mp.pi**2 * (sigma / gamma)**2 * k / (k + 1))
                       for k in range(1, n))
    scale = mp.sqrt(sens2 / (n * sigma**2))
    best = None
    for a in ORDERS:
        a = mp.mpf(a)
        r = rounds * min(a * scale**2 / 2 + tau * d, a / 2 * (scale + mp.sqrt(d) * tau)**2)
        if delta**2 + mp.expm1(-r) > 0:
            e = mp.mpf(0)
        elif a > 1.01:
            e = r + mp.log1p(-1 / a) - mp.log(delta * a) / (a - 1)
        else:
            continue
        if best is None or e < best:
            best = e
    return best, tau


for args in [(1, 0.5, 1e-3, 65536, 10, mp.e**-0.5, 1, 1e-3),
             (1, 0.5, 1e-3, 65536, 7, mp.e**-0.5, 1, 1e-3),
             (1, 0.3, 0.5, 64, 3, 0, 20, 1e-5),
             (0.5, 0.5, 0.001, 4096, 5, mp.e**-0.5, 10, 1e-5)]:
    e, tau = eps_ddg(*args)
    print(args, mp.nstr(e, 20), mp.nstr(tau, 20))
