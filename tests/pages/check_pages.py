#!/usr/bin/python3
"""Every page as a person sees it, in headless Chromium (Debian `chromium`) at 1400 px:
for each NAME=PAGE.html argument, loads a copy of the page with a small checking script
appended, reads the verdict back from the DOM (`--dump-dom`; Chromium runs the script before
it dumps, so nothing here depends on time), and saves a full-page screenshot SHOTS/NAME.png.

Checks: every chart (<svg>) has a non-empty <title>, an x and a y axis (.axis.x, .axis.y) and
a legend (.legend); no "NaN", "undefined" or "null" anywhere in the page's text (tooltips and
folded sections included); the page fits the 1400 px window without horizontal scrolling
(document.documentElement.scrollWidth <= 1400). Exits 1 naming every failure; a missing
Chromium is a failure, never a skip.

usage: check_pages.py SHOTS NAME=PAGE.html [NAME=PAGE.html ...]
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

WIDTH = 1400

CHECK = r"""<script>(function () {
  const out = {problems: [], charts: 0};
  const words = ["N" + "aN", "un" + "defined", "nu" + "ll"];  // not in this script's own text
  document.querySelectorAll("svg").forEach(function (c, i) {
    out.charts++;
    const t = c.querySelector(":scope > title");
    const name = t && t.textContent.trim() ? t.textContent.trim() : "chart " + (i + 1);
    if (!t || !t.textContent.trim()) out.problems.push(name + ": no <title>");
    if (!c.querySelector(".axis.x")) out.problems.push(name + ": no x axis (.axis.x)");
    if (!c.querySelector(".axis.y")) out.problems.push(name + ": no y axis (.axis.y)");
    if (!c.querySelector(".legend")) out.problems.push(name + ": no legend (.legend)");
  });
  const body = document.body.cloneNode(true);
  body.querySelectorAll("script").forEach(function (s) { s.remove(); });
  const text = body.textContent;
  words.forEach(function (w) {
    const m = new RegExp("\\b" + w + "\\b").exec(text);
    if (m) out.problems.push('text shows "' + w + '": ...' +
                             text.slice(Math.max(0, m.index - 60), m.index + 40) + "...");
  });
  out.scrollWidth = document.documentElement.scrollWidth;
  out.scrollHeight = document.documentElement.scrollHeight;
  if (out.scrollWidth > %d) out.problems.push("page is " + out.scrollWidth +
                                              " px wide: scrolls horizontally at %d px");
  const pre = document.createElement("pre");
  pre.id = "ff-page-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();</script>""" % (WIDTH, WIDTH)


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    raise SystemExit("FAIL: no chromium (Debian package 'chromium'; scripts/install-deps --test)")


def run(exe, args, profile):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", "--user-data-dir=" + profile] + args
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(cmd)}: exit {r.returncode}\n{r.stderr[-2000:]}")
    return r.stdout


def check(exe, name, page, shots, work):
    src = open(page, encoding="utf-8").read()
    if "</body>" not in src:
        return [f"{name}: {page} has no </body>"], None
    probe = os.path.join(work, name + ".check.html")
    with open(probe, "w", encoding="utf-8") as f:
        f.write(src.replace("</body>", CHECK + "</body>", 1))
    dom = run(exe, [f"--window-size={WIDTH},1000", "--dump-dom", "file://" + probe],
              os.path.join(work, "profile-" + name))
    m = re.search(r'<pre id="ff-page-check">(.*?)</pre>', dom, re.S)
    if not m:
        return [f"{name}: the checking script did not run (no verdict in the DOM)"], None
    v = json.loads(html.unescape(m.group(1)))
    height = max(600, min(int(v.get("scrollHeight", 3000)), 16000))
    shot = os.path.join(shots, name + ".png")
    run(exe, [f"--window-size={WIDTH},{height}", "--screenshot=" + shot,
              "file://" + os.path.abspath(page)], os.path.join(work, "shot-" + name))
    return [f"{name}: {p}" for p in v["problems"]], v


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    shots = sys.argv[1]
    os.makedirs(shots, exist_ok=True)
    exe = chromium()
    problems = []
    with tempfile.TemporaryDirectory() as work:
        for arg in sys.argv[2:]:
            name, _, page = arg.partition("=")
            if not page or not os.path.isfile(page):
                problems.append(f"{name}: no page at '{page}'")
                continue
            p, v = check(exe, name, os.path.abspath(page), shots, work)
            problems += p
            if v:
                print(f"{name}: {v['charts']} charts, {v['scrollWidth']} x {v['scrollHeight']} px,"
                      f" {len(p)} problems; screenshot {os.path.join(shots, name + '.png')}")
    for p in problems:
        print("FAIL", p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
