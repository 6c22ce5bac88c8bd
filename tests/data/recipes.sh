#!/bin/bash
# The two recipes of docs/data.md ("Recipes: your data as a site folder") run verbatim: the
# sh blocks are taken from the page, `fedfuse` is this build. Inputs: a ';'-separated
# reports.csv with a BOM (30 reports, labels 0/1, one empty), and a folder of 12 PNG images
# (plus 2 JPEGs when ImageMagick is installed) with labels.csv. Checks: data check exits 0
# on both folders, the patient counts and labelled counts match the inputs.
# usage: recipes.sh FEDFUSE SRC
set -u
fedfuse=$1 src=$2
tmp=$(mktemp -d /tmp/recipes.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; cat "$tmp/out.txt" 2>/dev/null; exit 1; }
cd "$tmp" || exit 1
mkdir bin && ln -s "$fedfuse" bin/fedfuse && export PATH="$tmp/bin:$PATH"
ln -s "$src/configs" configs
have_convert=0; convert -version 2>/dev/null | grep -q ImageMagick && have_convert=1
/usr/bin/python3 - "$have_convert" <<'EOP' || fail "inputs"
import os, sys, zlib, struct
with open("reports.csv", "w", encoding="utf-8-sig", newline="") as f:
    f.write("id;report;abnormal\r\n")
    for i in range(30):
        lab = "" if i == 7 else str(i % 2)
        f.write(f'r{i};"Chest film {i}: {"opacity in the right lower lobe" if i % 2 else "no acute findings"}; heart size normal";{lab}\r\n')
def png(path, w, h, v):
    raw = b"".join(b"\0" + bytes([(v + x + y) % 256 for x in range(w)]) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
os.mkdir("xrays")
rows = []
for i in range(12):
    png(f"xrays/img{i:03d}.png", 40, 40, i * 10)
    rows.append(f"img{i:03d}.png,{i % 2}")
if sys.argv[1] == "1":
    for i in (12, 13):
        png(f"xrays/tmp{i}.png", 40, 40, i)
        os.system(f"convert xrays/tmp{i}.png xrays/img{i:03d}.jpg && rm xrays/tmp{i}.png")
        rows.append(f"img{i:03d}.jpg,{i % 2}")
open("labels.csv", "w").write("file,label\n" + "\n".join(rows) + "\n")
EOP
# the sh blocks of the two recipes, as the page has them
/usr/bin/python3 - "$src/docs/data.md" <<'EOP' || fail "recipes not found in docs/data.md"
import re, sys
page = open(sys.argv[1]).read()
sec = page[page.index("### Recipes: your data as a site folder"):]
blocks = re.findall(r"```sh\n(.*?)```", sec, re.S)[:2]
assert len(blocks) == 2
for i, b in enumerate(blocks):
    open(f"recipe{i + 1}.sh", "w").write(b)
EOP
bash -e recipe1.sh > out.txt 2>&1 || fail "recipe 1"
grep -q "patients: train" out.txt || fail "recipe 1: no data check summary"
bash -e recipe2.sh > out.txt 2>&1 || fail "recipe 2"
grep -q "patients: train" out.txt || fail "recipe 2: no data check summary"
n_img=$((12 + 2 * have_convert))
"$fedfuse" data check hospital-a --config reports-model.yaml > out.txt 2>&1 || fail "check a"
/usr/bin/python3 - out.txt 30 29 <<'EOP' || fail "hospital-a counts"
import re, sys
t = open(sys.argv[1]).read()
n = sum(map(int, re.search(r"patients: train (\d+), val (\d+), test (\d+)", t).groups()))
lab = sum(int(m) for m in re.findall(r"abnormal [0-9.]+ \(\d+/(\d+)\)", t))
assert (n, lab) == (int(sys.argv[2]), int(sys.argv[3])), (n, lab)
assert "note 30" in t, t
EOP
"$fedfuse" data check hospital-b --config xray-model.yaml > out.txt 2>&1 || fail "check b"
/usr/bin/python3 - out.txt $n_img <<'EOP' || fail "hospital-b counts"
import re, sys
t = open(sys.argv[1]).read()
n = sum(map(int, re.search(r"patients: train (\d+), val (\d+), test (\d+)", t).groups()))
assert n == int(sys.argv[2]) and f"image {n}," in t, (n, t)
EOP
echo "PASS (jpeg: $have_convert)"
