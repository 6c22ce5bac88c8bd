#!/bin/bash
# `fedfuse data check` on exports a hospital actually produces (issue 23): the example site
# rewritten as Excel would save it (UTF-8 byte order mark, ';' delimiter), a notes.csv with a
# Latin-1 row, a tab-separated events.csv with a malformed row, a .dcm and a .jpg in images/,
# and one note longer than the model's token limit.
#   lenient: exit 0, the delimiters are said, every dropped row or file is listed with its
#            FILE:LINE and reason (the Latin-1 row, the bad event, the two image files, the
#            patient left without any modality), and
#            the share of notes cut equals what an independent Python count of the tokens gives.
#   strict:  exit 2 at the first problem, named by file and line.
# usage: check_exports.sh FEDFUSE SRC
set -u
fedfuse=$1 src=$2
tmp=$(mktemp -d /tmp/checkexp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; cat "$tmp/out.txt" 2>/dev/null; exit 1; }
s=$tmp/site
mkdir -p "$s/images"
cp "$src"/configs/example-site/images/*.png "$s/images/"
printf 'DICM' > "$s/images/ex-002.dcm"
printf '\xff\xd8\xff' > "$s/images/ex-003.JPG"
/usr/bin/python3 - "$src/configs/example-site" "$s" <<'EOP' || fail "fixture"
import csv, sys
src, dst = sys.argv[1], sys.argv[2]
rows = list(csv.reader(open(src + "/patients.csv", newline="")))
with open(dst + "/patients.csv", "w", newline="", encoding="utf-8-sig") as f:  # BOM
    csv.writer(f, delimiter=";").writerows(rows)
notes = list(csv.reader(open(src + "/notes.csv", newline="")))
notes[2][1] = "patient tr\xe8s fatigu\xe9"  # ex-002, line 4 (lines 2-3 are one quoted note)
notes.append(["ex-004", " ".join(f"word{i}" for i in range(40))])  # 40 words: cut at 32 ids
with open(dst + "/notes.csv", "w", newline="", encoding="latin-1") as f:
    csv.writer(f).writerows(notes)
ev = list(csv.reader(open(src + "/events.csv", newline="")))
ev.insert(3, ["ex-001", "-5", "VITAL:HR", "80"])         # line 4: hours_before < 0
with open(dst + "/events.csv", "w", newline="") as f:
    csv.writer(f, delimiter="\t").writerows(ev)
EOP

cfg=$src/tests/data/fixtures/model-tiny.yaml
"$fedfuse" data check "$s" --config "$cfg" > "$tmp/out.txt" 2>&1 || fail "lenient exit $?"
cat "$tmp/out.txt"
want() { grep -qF -- "$1" "$tmp/out.txt" || fail "missing: $1"; }
want "patients.csv: delimiter ';' (semicolon) detected"
want "events.csv: delimiter tab detected"
want "$s/notes.csv:4: not valid UTF-8 text (byte 18 of the line); save the file as UTF-8"
want "$s/events.csv:4: hours_before is not a finite number >= 0"
want "$s/images/ex-002.dcm: DICOM images are not read directly: convert them with \`fedfuse import dicom\`"
want "$s/images/ex-003.JPG: JPEG images are not read: convert them to PNG"
want "$s/patients.csv:3: patient has no image, note or event"   # its only note was the Latin-1 row
want "dropped (5, each with file:line and reason):"
want "patients: train 1, val 1, test 1"
# notes cut: an independent count of the ids each patient's notes make (words, plus a bigram
# after each word from the second on when the config has bigrams), against Lt
expect=$(/usr/bin/python3 - "$s/notes.csv" "$cfg" <<'EOP'
import csv, re, sys
cfg = open(sys.argv[2]).read()
lt = int(re.search(r"text: \{length: (\d+)", cfg).group(1))
bigrams = re.search(r"bigrams: true", cfg) is not None
ids = {}
for i, r in enumerate(csv.reader(open(sys.argv[1], newline="", encoding="latin-1"))):
    if i == 0 or not all(ord(c) < 128 for c in r[1]):
        continue  # header; the Latin-1 row is dropped by the loader
    w = len(re.findall(rb"[A-Za-z0-9]+", r[1].encode()))
    ids[r[0]] = ids.get(r[0], 0) + (2 * w - 1 if bigrams and w else w)
cut = sum(v > lt for v in ids.values())
print(f"notes cut at the model's {lt} tokens: {cut} of {len(ids)} patients with notes ({100 * cut / len(ids):.1f}%)")
EOP
)
want "$expect"

"$fedfuse" data check "$s" --strict --config "$cfg" > "$tmp/out.txt" 2>&1
rc=$?
[ $rc = 2 ] || fail "strict exit $rc, want 2"
want "fedfuse: error: $s/notes.csv:4: not valid UTF-8 text (byte 18 of the line)"
cp "$src"/configs/example-site/{notes,events}.csv "$s/"
"$fedfuse" data check "$s" --strict --config "$cfg" > "$tmp/out.txt" 2>&1
rc=$?
[ $rc = 2 ] || fail "strict exit $rc with the unsupported images, want 2"
grep -Eq "fedfuse: error: $s/images/ex-00(2.dcm: DICOM|3.JPG: JPEG) images are not read" "$tmp/out.txt" ||
    fail "strict: unsupported image"
echo PASS
