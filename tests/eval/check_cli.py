#!/usr/bin/python3
"""`fedfuse metrics` end to end against scikit-learn: for every case of sklearn_ref.py, runs
the CLI and compares the JSON's headline metrics and subgroup values; checks that the HTML
report is self-contained. Exits non-zero (loudly) on any mismatch or missing dependency.

usage: check_cli.py FEDFUSE OUTDIR
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sklearn_ref  # noqa: E402  (same folder; imports sklearn, fails loudly without it)


def close(a, b, tol, what):
    if a is None or b is None or abs(a - b) > tol:
        raise SystemExit(f"FAIL {what}: fedfuse {a!r} vs sklearn {b!r} (tol {tol})")


def main():
    fedfuse, outdir = sys.argv[1], sys.argv[2]
    sys.argv = [sys.argv[0], outdir]
    sklearn_ref.main()
    cases = json.load(open(os.path.join(outdir, "cases.json")))["cases"]
    worst = 0.0
    for c in cases:
        out = os.path.join(outdir, c["name"] + ".json")
        html = os.path.join(outdir, c["name"] + ".html")
        args = [fedfuse, "metrics", "--csv", c["csv"], "--out", out, "--html", html,
                "--bootstrap", "50", "--seed", "3"]
        if "fairness" in c:
            args += ["--group", "grp"]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"FAIL {c['name']}: exit {r.returncode}: {r.stderr}")
        j = json.load(open(out))
        for key in ("auroc", "auprc", "brier", "ece", "sensitivity_at_90_specificity",
                    "groups"):
            if key not in j:
                raise SystemExit(f"FAIL {c['name']}: JSON lacks '{key}'")
        for key, ref in (("auroc", c.get("auroc")), ("auprc", c.get("auprc")),
                         ("brier", c["brier"]), ("ece", c["reliability"]["10"]["ece"]),
                         ("sensitivity_at_90_specificity", c.get("sens_at_90_spec"))):
            if ref is None:
                if j[key] is not None or key not in j["undefined"]:
                    raise SystemExit(f"FAIL {c['name']}: {key} should be null with a reason")
                continue
            close(j[key], ref, 1e-9, f"{c['name']} {key}")
            worst = max(worst, abs(j[key] - ref))
        rel = j["curves"]["reliability"]
        got = [x for x in rel["count"]]
        if got != c["reliability"]["10"]["count"]:
            raise SystemExit(f"FAIL {c['name']}: reliability counts {got} vs "
                             f"{c['reliability']['10']['count']}")
        if "fairness" in c:
            g = j["groups"]["grp"]
            for lv, ref in c["fairness"]["levels"].items():
                close(g["levels"][lv]["brier"], ref["brier"], 1e-12, f"{lv} brier")
                if "auroc" in ref:
                    close(g["levels"][lv]["auroc"], ref["auroc"], 1e-12, f"{lv} auroc")
            close(g["demographic_parity_difference"], c["fairness"]["dp"], 1e-12, "dp")
            close(g["equalized_odds_difference"], c["fairness"]["eo"], 1e-12, "eo")
            # the same column as sites: per-site metrics equal sklearn on each site's rows
            sj = os.path.join(outdir, c["name"] + ".sites.json")
            r = subprocess.run([fedfuse, "metrics", "--csv", c["csv"], "--site-column", "grp",
                                "--out", sj], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"FAIL {c['name']} --site-column: {r.stderr}")
            sites = json.load(open(sj))["sites"]
            for lv, ref in c["fairness"]["levels"].items():
                close(sites[lv]["brier"], ref["brier"], 1e-12, f"site {lv} brier")
                if "auroc" in ref:
                    close(sites[lv]["auroc"], ref["auroc"], 1e-12, f"site {lv} auroc")
        page = open(html).read()
        for bad in ("<script", "http://", "https://", "NaN", "nan<"):
            if bad in page:
                raise SystemExit(f"FAIL {c['name']}: report contains '{bad}'")
        if page.count("<svg") < 4:
            raise SystemExit(f"FAIL {c['name']}: report has {page.count('<svg')} charts")
        text = open(out).read()
        if "NaN" in text or "Infinity" in text:
            raise SystemExit(f"FAIL {c['name']}: JSON holds NaN/Infinity")
    print(f"ok: {len(cases)} cases, max |fedfuse - sklearn| = {worst:.3g}")


if __name__ == "__main__":
    main()
