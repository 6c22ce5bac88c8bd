#!/usr/bin/env python3
"""Independent checks of a noised statistics query (docs/statistics.md, "Noise").

stats_dp_oracle.py QUERY OUT SITE...
From the query file alone (PyYAML), counts the cells one patient can change (m) and, from the
noise stats.json states (per-share variance, t shares), recomputes with numpy:
  - the pooled release's epsilon: the closed form of Kairouz, Liu, Steinke 2021 Prop. 14 for a
    sum of t discrete Gaussians with L2 sensitivity sqrt(m) (integer inputs, no rounding), at
    dp_accounting's orders, converted with the improved RDP -> (eps, delta) rule;
  - each site's own release: the Gaussian mechanism's RDP alpha m / (2 sigma^2), and the
    exact (eps, delta) curve of the Gaussian mechanism (Balle and Wang 2018, Thm 8), which the
    RDP-based epsilon must bound from above (and not by more than 40 %);
  - that sigma is the smallest that meets the declared epsilon (1 % less noise does not);
  - every released count, sum and mean against numpy on the pooled rows: within its stated
    bound, and not all exact (the noise is there; the seed is fixed by the test);
  - epsilon in stats.json, in the audit log and in every site's privacy ledger.
"""
import json
import math
import os
import sys

import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats_oracle import fail, num, rows_of  # noqa: E402  (the demo oracle's row readers)

ORDERS = np.array([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) +
                  [128, 256, 512, 1024], dtype=float)


def rdp_to_eps(rdp, delta):
    """dp_accounting's compute_epsilon (improved conversion), vectorised over ORDERS."""
    a = ORDERS
    eps = rdp + np.log1p(-1 / a) - (math.log(delta) + np.log(a)) / (a - 1)
    eps = np.where(delta ** 2 + np.expm1(-rdp) > 0, 0.0, eps)
    eps = np.where(a > 1.01, eps, np.inf)
    return float(np.min(eps))


def eps_pooled(m, share_sd, t, delta):
    k = np.arange(1, t)
    tau = 10 * np.sum(np.exp(-2 * math.pi ** 2 * share_sd ** 2 * k / (k + 1)))
    scale2 = m / (t * share_sd ** 2)
    a = ORDERS
    rdp = np.minimum(a * scale2 / 2 + tau * m,
                     a / 2 * (math.sqrt(scale2) + math.sqrt(m) * tau) ** 2)
    return rdp_to_eps(rdp, delta)


def eps_gauss_rdp(m, sd, delta):
    return rdp_to_eps(ORDERS * m / (2 * sd ** 2), delta)


def phi(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def delta_gauss_exact(eps, sens, sd):
    """Balle and Wang 2018 Thm 8: the Gaussian mechanism's exact delta at eps."""
    return phi(sens / (2 * sd) - eps * sd / sens) - math.exp(eps) * phi(-sens / (2 * sd) - eps * sd / sens)


def cells_per_patient(q):
    m = 1
    for v in q.get("variables", []):
        if v.get("type", "numeric") == "categorical":
            m += 2
        else:
            m += 3 + ("hist" in v) + ("quantiles" in v)
    return m + len(q.get("crosstabs", [])) + 2 * len(q.get("survival", []))


def in_cohort(row, q):
    for f in q.get("where", []):
        if "values" in f:
            if row.get(f["column"]) not in [str(x) for x in f["values"]]:
                return False
        else:
            x = num(row.get(f["column"]))
            if x is None or x < f.get("min", -1e300) or x > f.get("max", 1e300):
                return False
    return True


def exact_numbers(q, rows):
    """(variable, statistic, key) -> exact value, with the sensitivity of that number."""
    out = {("patients", "count", None): len(rows)}
    for v in q.get("variables", []):
        name = v["name"]
        if v.get("type", "numeric") == "categorical":
            vals = [r.get(name, "") for r in rows]
            present = [x for x in vals if x not in ("", "NA")]
            out[(name, "count", None)] = len(present)
            out[(name, "missing", None)] = len(vals) - len(present)
            for c in v["values"]:
                out[(name, "hist", str(c))] = sum(1 for x in present if x == str(c))
            continue
        xs = np.array([x for x in (num(r.get(name)) for r in rows) if x is not None])
        out[(name, "count", None)] = len(xs)
        out[(name, "missing", None)] = len(rows) - len(xs)
        clipped = np.clip(xs, v["min"], v["max"])
        scale = 10.0 ** v.get("decimals", 0)
        s = float(np.sum(np.round(clipped * scale))) / scale
        out[(name, "sum", None)] = s
        out[(name, "mean", None)] = s / len(xs)
        h = v.get("hist")
        if h:
            edges = np.arange(h["min"], h["max"] + h["width"] / 2, h["width"])
            for lo, hi in zip(edges[:-1], edges[1:]):
                out[(name, "hist", float(lo))] = int(np.sum((xs >= lo) & (xs < hi)))
    return out


def key_of(r):
    if "category" in r:
        return r["category"]
    b = r.get("bin")
    if b and not isinstance(b["lo"], str):
        return float(b["lo"])
    return "open" if b else None


def main():
    qpath, out, sites = sys.argv[1], sys.argv[2], sys.argv[3:]
    q = yaml.safe_load(open(qpath))
    doc = json.load(open(os.path.join(out, "stats.json")))
    p = doc["privacy"]
    m = cells_per_patient(q)
    if p["cells_per_patient"] != m:
        fail("cells per patient: fedfuse %r, counted here %d" % (p["cells_per_patient"], m))
    t, share_sd, delta = p["shares"], math.sqrt(p["share_variance"]), p["delta"]
    if delta != q["privacy"]["delta"] or p["epsilon_declared"] != q["privacy"]["epsilon"]:
        fail("the declared privacy is not the query's: %r" % p)
    # the share is sigma^2 / t rounded up to 1/4096
    if not (p["sigma"] ** 2 / t <= share_sd ** 2 <= p["sigma"] ** 2 / t + 1 / 4096 + 1e-12):
        fail("share variance %r for sigma %r over %d shares" % (share_sd ** 2, p["sigma"], t))
    eps = eps_pooled(m, share_sd, t, delta)
    if abs(eps - p["epsilon"]) > 1e-9 * max(1, eps):
        fail("pooled epsilon: fedfuse %.12g, closed form %.12g" % (p["epsilon"], eps))
    if eps > q["privacy"]["epsilon"] + 1e-12:
        fail("pooled epsilon %.6g is above the declared %g" % (eps, q["privacy"]["epsilon"]))
    less = math.sqrt(math.ceil((0.99 * p["sigma"]) ** 2 / t * 4096) / 4096)
    if eps_pooled(m, less, t, delta) <= q["privacy"]["epsilon"]:
        fail("sigma %.6g is not the smallest: 1%% less noise still meets epsilon" % p["sigma"])
    # a site's own release: full variance sigma^2 (rounded up to 1/4096)
    site_sd = math.sqrt(math.ceil(p["sigma"] ** 2 * 4096) / 4096)
    e_site = eps_gauss_rdp(m, site_sd, delta)
    if abs(e_site - p["epsilon_per_site_release"]) > 1e-9 * max(1, e_site):
        fail("per-site epsilon: fedfuse %.12g, closed form %.12g" % (p["epsilon_per_site_release"], e_site))
    d_exact = delta_gauss_exact(e_site, math.sqrt(m), site_sd)
    if d_exact > delta * (1 + 1e-9):
        fail("the RDP epsilon %.6g is not an upper bound: the exact delta there is %.3g > %g" % (e_site, d_exact, delta))
    lo, hi = 0.0, e_site  # the exact epsilon at delta, by bisection
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if delta_gauss_exact(mid, math.sqrt(m), site_sd) <= delta else (mid, hi)
    if e_site > 1.4 * hi:
        fail("the RDP epsilon %.6g is loose: the exact one is %.6g" % (e_site, hi))
    print("dp: m %d, sigma %.6g over %d shares: pooled epsilon %.6f (closed form %.6f), own "
          "results %.6f (exact Gaussian mechanism %.6f)" % (m, p["sigma"], t, p["epsilon"], eps, e_site, hi))

    rows = [r for s in sites for r in rows_of(s) if in_cohort(r, q)]
    exact = exact_numbers(q, rows)
    checked = differ = 0
    for r in doc["results"]:
        if r["site"] != "pooled":
            continue
        if r.get("epsilon") != p["epsilon"] or r.get("delta") != delta:
            fail("result without the query's epsilon/delta: %r" % (r,))
        k = (r["variable"], r["statistic"], key_of(r))
        if k not in exact or "bound" not in r:
            continue
        err = abs(r["value"] - exact[k])
        if err > r["bound"] + 1e-9 * max(1, abs(exact[k])):
            fail("%r: released %r, exact %r, outside the stated bound %r" % (k, r["value"], exact[k], r["bound"]))
        checked += 1
        differ += err > 1e-9
    if checked < 10 or differ == 0:
        fail("%d numbers checked, %d differ from exact: no noise?" % (checked, differ))
    print("dp: %d released numbers within their bound of numpy's exact values, %d differ from "
          "them" % (checked, differ))
    own = [r for r in doc["results"] if r["site"] != "pooled"]
    if any(r.get("epsilon") != p["epsilon_per_site_release"] for r in own):
        fail("a site's own result without its release's epsilon")
    # every site's ledger, recomputed from its rounds: the pooled release (and its own
    # results when it released them) composed by adding RDP per order
    hist = os.path.join(out, "history")
    for f in sorted(os.listdir(hist)):
        if not f.startswith("privacy-ledger-"):
            continue
        led = json.load(open(os.path.join(hist, f)))
        rdp = np.zeros(len(ORDERS))
        for r in led["rounds"]:
            if r["mechanism"] == "gaussian":
                rdp += ORDERS / (2 * r["sigma"] ** 2)
            else:
                if not r.get("ddg_integer") or r["ddg_dim"] != m or r["survivors"] != t:
                    fail("%s: round %r is not this query's" % (f, r))
                k = np.arange(1, t)
                s2 = r["ddg_sigma"] ** 2
                tau = 10 * np.sum(np.exp(-2 * math.pi ** 2 * s2 * k / (k + 1)))
                sc2 = r["clip_norm"] ** 2 / (t * s2)
                rdp += np.minimum(ORDERS * sc2 / 2 + tau * m,
                                  ORDERS / 2 * (math.sqrt(sc2) + math.sqrt(m) * tau) ** 2)
        e = rdp_to_eps(rdp, led["delta"])
        site = f[len("privacy-ledger-"):-len(".json")]
        want = 2 if any(r["site"] == site for r in own) else 1
        if len(led["rounds"]) != want or abs(e - led["epsilon"]) > 1e-9 * max(1, e):
            fail("%s: %d rounds, epsilon %r, recomputed %r" % (f, len(led["rounds"]), led["epsilon"], e))
        print("dp: %s: %d release(s) charged, epsilon %.6f (recomputed %.6f)" % (f, want, led["epsilon"], e))
    entries = [json.loads(l) for l in open(os.path.join(out, "audit.jsonl"))]
    st = [e.get("data", e) for e in entries if e.get("event") == "statistics"]
    if len(st) != 1 or st[0].get("epsilon") != p["epsilon"]:
        fail("the audit log's statistics entry does not state epsilon %r" % p["epsilon"])


if __name__ == "__main__":
    main()
