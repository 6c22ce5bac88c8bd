#!/usr/bin/python3
"""Independent high-precision oracle for the RDP accountant tests (mpmath, 40 digits).

Integer orders: the binomial expansion of A_alpha summed exactly. Fractional orders: A_alpha
as the integral E_{z~N(0,s^2)}[((1-q) + q e^{(2z-1)/(2s^2)})^alpha] by adaptive quadrature,
which shares no code or series with the C implementation; plus dp_accounting's conservative
series (|binom| terms, its stopping rule) evaluated in mpmath. Prints C initialisers for test_accountant.c.

Run: /usr/bin/python3 tests/privacy/oracle_rdp.py > tests/privacy/oracle_rdp.inc
"""
import mpmath as mp

mp.mp.dps = 40


def log_a_int(q, s, a):
    q, s = mp.mpf(q), mp.mpf(s)
    return mp.log(mp.fsum(mp.binomial(a, i) * q**i * (1 - q)**(a - i) *
                          mp.e**((i * i - i) / (2 * s * s)) for i in range(a + 1)))


def log_a_quad(q, s, a):
    q, s, a = mp.mpf(q), mp.mpf(s), mp.mpf(a)
    f = lambda z: mp.npdf(z, 0, s) * ((1 - q) + q * mp.e**((2 * z - 1) / (2 * s * s)))**a
    z0 = s * s * mp.log(1 / q - 1) + mp.mpf(1) / 2
    pts = sorted(set([-mp.inf, -12 * s, 0, mp.mpf(1) / 2, 1, z0, a + 12 * s * a, mp.inf]))
    return mp.log(mp.quad(f, pts))


def log_a_abs(q, s, a):
    q, s, a = mp.mpf(q), mp.mpf(s), mp.mpf(a)
    z0 = s**2 * mp.log(1 / q - 1) + mp.mpf(1) / 2
    tot, last0, last1 = 0, -1, -1
    for i in range(1000):
        c = abs(mp.binomial(a, i))
        j = a - i
        t0 = c * q**i * (1 - q)**j * mp.e**((i * i - i) / (2 * s * s)) * \
            mp.erfc((i - z0) / (mp.sqrt(2) * s)) / 2
        t1 = c * q**j * (1 - q)**i * mp.e**((j * j - j) / (2 * s * s)) * \
            mp.erfc((z0 - j) / (mp.sqrt(2) * s)) / 2
        tot += t0 + t1
        # dp_accounting's stopping rule: both terms decreasing and below e^-30 of the total
        # (the truncation is part of what that library computes).
        if last0 >= 0 and t0 < last0 and t1 < last1 and max(t0, t1) < tot * mp.e**-30:
            return mp.log(tot)
        last0, last1 = t0, t1
    return mp.inf  # dp_accounting excludes the order after 1000 terms


def rdp(q, s, a, mode):
    if float(a).is_integer():
        return log_a_int(q, s, int(a)) / (a - 1)
    f = log_a_quad if mode == 'exact' else log_a_abs
    return f(q, s, a) / (mp.mpf(a) - 1)


grid = [(q, s, a) for q in (0.001, 0.01, 0.1, 0.5) for s in (0.7, 1.0, 4.0)
        for a in (1.5, 2, 3.7, 8, 10.9, 32, 256)]
print("/* q, sigma, alpha, rdp (exact: integral / binomial), rdp (dp_accounting series) */")
for q, s, a in grid:
    ex = rdp(q, s, a, 'exact')
    ab = ex if float(a).is_integer() else rdp(q, s, a, 'abs')
    fmt = lambda v: "INFINITY" if mp.isinf(v) else mp.nstr(v, 20)
    print("    {%r, %r, %r, %s, %s}," % (q, s, float(a), fmt(ex), fmt(ab)))
