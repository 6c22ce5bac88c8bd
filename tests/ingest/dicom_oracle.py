#!/usr/bin/python3
"""fedfuse import dicom against its oracles.

1. DCMTK's own renderer: every written image equals `dcm2pnm` (`dcmj2pnm` / `dcml2pnm` for
   compressed transfer syntaxes) of the same file with the same
   window, pixel for pixel (the real shared sample and files this test makes with DCMTK's
   tools: dump2dcm, dcmodify, dcmcjpeg, dcmcjpls, dcmcrle).
2. numpy, independently of DCMTK: the DICOM linear window (PS3.3 C.11.2.1.2) after the rescale
   slope/intercept, MONOCHROME1 inversion, and the letterbox resampling (area averaging).
3. No identifying header value (names, ids, accession numbers, dates, UIDs) in any output file.
4. Walk: any nesting, filters by modality/body part/view, unmapped and non-DICOM files
   skipped and counted, the accession-number mapping, `data check --strict` on the site.

usage: dicom_oracle.py FEDFUSE SAMPLE_DIR WORK_DIR
"""
import os
import shutil
import struct
import sys
import zlib

import numpy as np

from oracle_util import FAILS, check, run

FEDFUSE, SAMPLE, WORK = sys.argv[1], sys.argv[2], sys.argv[3]


def read_png(path):
    """8-bit gray, non-interlaced PNG (what fedfuse writes) with the five filters."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color, _, _, inter = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color == 0 and inter == 0, (depth, color, inter)
        elif kind == b"IDAT":
            idat += body
        elif kind not in (b"IEND",):
            raise AssertionError(f"unexpected chunk {kind!r} in {path}")
        pos += 12 + n
    raw = zlib.decompress(idat)
    out = np.zeros((h, w), np.uint8)
    prev = np.zeros(w, np.int32)
    for y in range(h):
        f = raw[y * (w + 1)]
        line = np.frombuffer(raw, np.uint8, w, y * (w + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:
            cur = np.cumsum(line) & 255
        elif f == 2:
            cur = (line + prev) & 255
        else:
            cur = np.zeros(w, np.int32)
            for x in range(w):
                a = cur[x - 1] if x else 0
                b = prev[x]
                c = prev[x - 1] if x else 0
                if f == 3:
                    p = (a + b) // 2
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out


def read_pgm(path):
    data = open(path, "rb").read()
    parts = data.split(maxsplit=4)
    assert parts[0] == b"P5" and parts[3] == b"255", parts[:4]
    w, h = int(parts[1]), int(parts[2])
    return np.frombuffer(parts[4][: w * h], np.uint8).reshape(h, w)


def count(out, reason):
    """The count printed for a skip reason (0 when the line is absent)."""
    for line in out.splitlines():
        if line.startswith("  " + reason + " "):
            return int(line.split()[-1])
    return 0


def dcm2pnm(path, window):
    """dcm2pnm, or for compressed files dcmj2pnm (JPEG, RLE) / dcml2pnm (JPEG-LS): the same
    program with DCMTK's decoders registered (same options, same rendering)."""
    out = os.path.join(WORK, "ref.pgm")
    xfer = run("dcmdump", "-q", "-M", "+P", "0002,0010", path).stdout
    plain = any(u in xfer for u in ("=LittleEndianImplicit", "=LittleEndianExplicit",
                                    "=BigEndianExplicit"))
    args = ["dcm2pnm" if plain else "dcml2pnm" if "JPEGLS" in xfer else "dcmj2pnm"]
    if window == "stored":
        args.append("+Wi")
        args.append("1")
    elif window not in ("none", None):
        c, w = window.split(",")
        args += ["+Ww", c, w]
    run(*args, path, out)
    return read_pgm(out)


# --- the DICOM files this test makes with DCMTK's tools -------------------------------------
IDENT = {"name": "Doe^Jane", "pid": "PAT98765", "acc": "ACC12345", "birth": "19450607",
         "date": "20190304", "uid": "1.2.826.0.1.3680043.2.1143.777", "inst": "St Elsewhere"}


def dump_file(name, rows, cols, bits, stored, signed, photometric, pixels, extra="", pid=None,
              acc=None, modality="CR", uid_tail="1"):
    raw = os.path.join(WORK, name + ".raw")
    fmt = ("<%d" % pixels.size) + ("B" if bits == 8 else "h" if signed else "H")
    open(raw, "wb").write(struct.pack(fmt, *pixels.ravel().tolist()))
    dump = os.path.join(WORK, name + ".dump")
    open(dump, "w").write(f"""(0008,0016) UI =SecondaryCaptureImageStorage
(0008,0018) UI {IDENT['uid']}.{uid_tail}
(0008,0020) DA {IDENT['date']}
(0008,0030) TM 101112
(0008,0050) SH {acc or IDENT['acc']}
(0008,0060) CS {modality}
(0008,0080) LO {IDENT['inst']}
(0010,0010) PN {IDENT['name']}
(0010,0020) LO {pid or IDENT['pid']}
(0010,0030) DA {IDENT['birth']}
(0018,0015) CS CHEST
(0018,5101) CS PA
(0020,000d) UI {IDENT['uid']}.100
(0020,000e) UI {IDENT['uid']}.200
(0028,0002) US 1
(0028,0004) CS {photometric}
(0028,0010) US {rows}
(0028,0011) US {cols}
(0028,0100) US {bits}
(0028,0101) US {stored}
(0028,0102) US {stored - 1}
(0028,0103) US {1 if signed else 0}
{extra}(7fe0,{'0010'}) {'OB' if bits == 8 else 'OW'} ={raw}
""")
    path = os.path.join(WORK, name + ".dcm")
    run("dump2dcm", "+te", "-g", dump, path)
    return path


def window_np(x, c, w):
    """PS3.3 C.11.2.1.2.1, linear, to 0..255."""
    lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    return np.where(x <= lo, 0, np.where(x > hi, 255, y))


def letterbox_np(img, size):
    """Area averaging into size x size keeping the aspect ratio, centred, black around."""
    h, w = img.shape
    s = size / max(h, w)
    dh, dw = min(size, max(1, int(h * s + 0.5))), min(size, max(1, int(w * s + 0.5)))

    def weights(n, m):  # m target cells over n source cells
        wt = np.zeros((m, n))
        for t in range(m):
            a, b = t * n / m, (t + 1) * n / m
            for i in range(int(a), min(n, int(np.ceil(b)))):
                wt[t, i] = max(0.0, min(b, i + 1) - max(a, i))
        return wt / wt.sum(1, keepdims=True)

    small = weights(h, dh) @ img.astype(np.float64) @ weights(w, dw).T
    out = np.zeros((size, size))
    y0, x0 = (size - dh) // 2, (size - dw) // 2
    out[y0:y0 + dh, x0:x0 + dw] = np.floor(small + 0.5)
    return out


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    pacs = os.path.join(WORK, "pacs")
    rng = np.random.default_rng(5)
    made = {}  # site patient id -> (dicom path, window, numpy expectation or None)

    def place(rel, src):
        dst = os.path.join(pacs, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(src, dst)
        return dst

    # 8-bit MONOCHROME2, no window: identity.
    g8 = rng.integers(0, 256, (48, 64))
    p = dump_file("m2_8", 48, 64, 8, 8, False, "MONOCHROME2", g8, pid="P-M2-8", uid_tail="2")
    made["m2_8"] = (place("a/b/c/x1", p), "none", g8)
    # 8-bit MONOCHROME1 (dcmodify turns a MONOCHROME2 copy into one): inverted.
    m1 = place("a/m1.dcm", p)
    run("dcmodify", "-nb", "-m", "(0028,0004)=MONOCHROME1", "-m", "(0010,0020)=P-M1-8", m1)
    made["m1_8"] = (m1, "none", 255 - g8)
    # 12-bit in 16 with rescale slope 2, intercept -1000 and a stored window.
    g12 = rng.integers(0, 4096, (40, 56))
    extra = ("(0028,1050) DS 1500\n(0028,1051) DS 3000\n"
             "(0028,1052) DS -1000\n(0028,1053) DS 2\n")
    p12 = dump_file("m2_12", 40, 56, 16, 12, False, "MONOCHROME2", g12, extra, pid="P-M2-12",
                    uid_tail="3")
    made["m2_12"] = (place("b/12bit", p12), "stored", window_np(g12 * 2.0 - 1000, 1500, 3000))
    # 16-bit unsigned with a stored window.
    g16 = rng.integers(0, 65536, (50, 30))
    p16 = dump_file("m2_16", 50, 30, 16, 16, False, "MONOCHROME2", g16,
                    "(0028,1050) DS 30000\n(0028,1051) DS 20000\n", pid="P-M2-16", uid_tail="4")
    made["m2_16"] = (place("c/d/e/f/16bit", p16), "stored", window_np(g16 * 1.0, 30000, 20000))
    # 16-bit signed, no stored window (a declared one is tested below).
    g16s = rng.integers(-2000, 3000, (32, 32))
    p16s = dump_file("m2_16s", 32, 32, 16, 16, True, "MONOCHROME2", g16s, pid="P-M2-16S",
                     uid_tail="5")
    made["m2_16s"] = (place("c/16signed", p16s), "none", None)
    # Compressed transfer syntaxes, made by DCMTK's encoders from the files above.
    jb = os.path.join(WORK, "jpeg_base.dcm")
    run("dcmcjpeg", "+eb", p, jb)
    run("dcmodify", "-nb", "-m", "(0010,0020)=P-JPEG", jb)
    made["jpeg"] = (place("d/jpeg", jb), "none", None)
    j12 = os.path.join(WORK, "jpeg_ext12.dcm")
    run("dcmcjpeg", "+ee", p12, j12)
    run("dcmodify", "-nb", "-m", "(0010,0020)=P-JPEG12", j12)
    made["jpeg12"] = (place("d/jpeg12", j12), "stored", None)
    jls = os.path.join(WORK, "jpegls.dcm")
    run("dcmcjpls", p12, jls)
    run("dcmodify", "-nb", "-m", "(0010,0020)=P-JPLS", jls)
    made["jpegls"] = (place("e/jpegls", jls), "stored", window_np(g12 * 2.0 - 1000, 1500, 3000))
    rle = os.path.join(WORK, "rle.dcm")
    run("dcmcrle", p16, rle)
    run("dcmodify", "-nb", "-m", "(0010,0020)=P-RLE", rle)
    made["rle"] = (place("e/f/rle", rle), "stored", window_np(g16 * 1.0, 30000, 20000))
    # The real sample (8-bit MONOCHROME2, 1024 x 1024, no window), as is.
    sample = [f for f in os.listdir(SAMPLE) if f.endswith(".dcm")][0]
    made["sample"] = (place("real/" + sample, os.path.join(SAMPLE, sample)), "none", None)
    # Files that must be skipped: not DICOM, a modality not kept, a patient not in the map.
    open(os.path.join(pacs, "a", "README.txt"), "w").write("not an image\n")
    ct = dump_file("ct", 16, 16, 8, 8, False, "MONOCHROME2", g8[:16, :16], pid="P-M2-8",
                   modality="CT", uid_tail="6")
    place("z/ct", ct)
    stranger = dump_file("stranger", 16, 16, 8, 8, False, "MONOCHROME2", g8[:16, :16],
                         pid="NOT-MAPPED", uid_tail="7")
    place("z/stranger", stranger)
    # A second, later image of the m2_8 patient (study next day): the earlier one is kept.
    later = os.path.join(WORK, "later.dcm")
    shutil.copy(made["m2_8"][0], later)
    run("dcmodify", "-nb", "-m", "(0008,0020)=20190305", "-m", f"(0008,0018)={IDENT['uid']}.8",
        later)
    place("0/later", later)

    dpid = {"m2_8": "P-M2-8", "m1_8": "P-M1-8", "m2_12": "P-M2-12", "m2_16": "P-M2-16",
            "m2_16s": "P-M2-16S", "jpeg": "P-JPEG", "jpeg12": "P-JPEG12", "jpegls": "P-JPLS",
            "rle": "P-RLE", "sample": "Covid0000"}
    mapf = os.path.join(WORK, "map.csv")
    with open(mapf, "w") as f:
        f.write("patient_id,dicom_patient_id\n")
        for k, v in dpid.items():
            f.write(f"site-{k},{v}\n")

    # --- native size, stored windows: dcm2pnm and numpy ------------------------------------
    site = os.path.join(WORK, "site")
    p = run(FEDFUSE, "import", "dicom", "--in", pacs, "--map", mapf, "--out", site,
            "--modality", "CR", "--modality", "DX")
    print(p.stdout, end="")
    check("10 images written for 10 mapped patients" in p.stdout, "10 images written")
    check(count(p.stdout, "not DICOM") == 1, "the text file counted as not DICOM")
    check(count(p.stdout, "modality not kept") == 1, "the CT counted as modality not kept")
    check(count(p.stdout, "not in the mapping file") == 1, "the unmapped patient counted")
    check(count(p.stdout, "later image of the same patient") == 1, "the later image counted")
    for k, (path, win, expect) in made.items():
        ours = read_png(os.path.join(site, "images", f"site-{k}.png"))
        ref = dcm2pnm(path, win)
        check(ours.shape == ref.shape and np.array_equal(ours, ref),
              f"{k}: pixel-equal to dcm2pnm ({win} window, {ref.shape[1]}x{ref.shape[0]})")
        if expect is not None:
            d = np.abs(ours.astype(float) - expect)
            check(d.max() <= 1.0, f"{k}: numpy window/rescale/inversion within 1 (max {d.max():.2f})")
    ours = read_png(os.path.join(site, "images", "site-jpeg.png"))
    d = np.abs(ours.astype(float) - g8)
    check(d.mean() < 4, f"jpeg: lossy baseline close to the original (mean |d| {d.mean():.2f})")
    man = open(os.path.join(site, "image_manifest.csv")).read().splitlines()
    check(len(man) == 11 and man[0].startswith("patient_id,image,modality"), "manifest rows")
    check(any(",1.2.840.10008.1.2.4.80," in r for r in man) and
          any(",1.2.840.10008.1.2.5," in r for r in man) and
          any(",1.2.840.10008.1.2.4.50," in r for r in man), "manifest transfer syntaxes")

    # --- declared window, and resampling against numpy --------------------------------------
    site2 = os.path.join(WORK, "site-declared")
    run(FEDFUSE, "import", "dicom", "--in", pacs, "--map", mapf, "--out", site2,
        "--window", "200,1500", "--modality", "CR", "--modality", "DX")
    for k in ("m2_16s", "m2_12", "m1_8"):
        ours = read_png(os.path.join(site2, "images", f"site-{k}.png"))
        check(np.array_equal(ours, dcm2pnm(made[k][0], "200,1500")),
              f"{k}: declared window pixel-equal to dcm2pnm +Ww 200 1500")
    ours = read_png(os.path.join(site2, "images", "site-m2_16s.png"))
    d = np.abs(ours - window_np(g16s * 1.0, 200, 1500))
    check(d.max() <= 1.0, f"m2_16s: numpy window on signed pixels within 1 (max {d.max():.2f})")

    site3 = os.path.join(WORK, "site-32")
    run(FEDFUSE, "import", "dicom", "--in", pacs, "--map", mapf, "--out", site3, "--size", "32",
        "--modality", "CR", "--modality", "DX")
    for k in ("m2_12", "m2_16", "sample", "m1_8"):
        native = read_png(os.path.join(site, "images", f"site-{k}.png"))
        ours = read_png(os.path.join(site3, "images", f"site-{k}.png"))
        d = np.abs(ours.astype(float) - letterbox_np(native, 32))
        check(ours.shape == (32, 32) and d.max() <= 1 and (d > 0).mean() < 0.02,
              f"{k}: letterboxed 32x32 equals numpy area averaging (max {d.max():.0f}, "
              f"{(d > 0).mean() * 100:.1f}% off by 1)")

    # --- accession-number mapping and the view filter ---------------------------------------
    mapa = os.path.join(WORK, "map-acc.csv")
    open(mapa, "w").write("patient_id,accession_number\nvisit-1,ACC12345\n")
    site4 = os.path.join(WORK, "site-acc")
    p = run(FEDFUSE, "import", "dicom", "--in", pacs, "--map", mapa, "--out", site4,
            "--view", "PA")
    check("1 images written for 1 mapped patients" in p.stdout, "accession mapping: one patient")
    check(count(p.stdout, "view position not kept") == 1, "the sample (no view) filtered")
    p = run(FEDFUSE, "import", "dicom", "--in", pacs, "--map", mapa, "--out",
            os.path.join(WORK, "site-lat"), "--view", "LAT")
    check("0 images written" in p.stdout, "--view LAT keeps nothing")

    # --- no identifying value anywhere in the output ----------------------------------------
    values = list(IDENT.values()) + list(dpid.values()) + ["1.3.6.1.4.1.11129.5.5", "Covid0000"]
    import json
    hdr = json.load(open(os.path.join(SAMPLE, sample[:-4] + ".json")))
    for tag in ("00080018", "0020000D", "0020000E"):
        values.append(hdr[tag]["Value"][0])
    leaks = []
    for s in (site, site2, site3, site4):
        for root, _, files in os.walk(s):
            for f in files:
                blob = open(os.path.join(root, f), "rb").read()
                for v in values:
                    if v.encode() in blob or v.encode() in f.encode():
                        leaks.append((f, v))
    check(not leaks, f"no identifying header value in the output ({len(values)} values, "
          f"{sum(len(fs) for s in (site, site2, site3, site4) for _, _, fs in os.walk(s))} files)"
          + (f": {leaks[:3]}" if leaks else ""))

    # --- the output is a usable site once patients.csv exists -------------------------------
    with open(os.path.join(site3, "patients.csv"), "w") as f:
        f.write("patient_id,age,sex,split,label_admission,label_icu,label_critical\n")
        for i, k in enumerate(dpid):
            f.write(f"site-{k},{40 + i},F,{('train', 'val', 'test')[i % 3]},{i % 2},0,\n")
    p = run(FEDFUSE, "data", "check", site3, "--strict", "--config",
            os.path.join(os.path.dirname(__file__), "..", "..", "configs", "model-tiny.yaml"),
            ok=False)
    check(p.returncode == 0 and "usable (strict mode" in p.stdout,
          "data check --strict on the imported images")

    # --- refusals ------------------------------------------------------------------------------
    p = run(FEDFUSE, "import", "dicom", "--in", pacs, "--map", mapf, "--out", site, ok=False)
    check(p.returncode == 1 and "already exists" in p.stderr, "a second import into the site refused")
    p = run(FEDFUSE, "import", "dicom", "--in", pacs, "--map", mapf, "--out",
            os.path.join(WORK, "strict"), "--strict", ok=False)
    check(p.returncode == 2 and "README.txt: not DICOM" in p.stderr and "Doe" not in p.stderr,
          "--strict names the first bad file, no header value")
    bad = os.path.join(WORK, "bad-map.csv")
    open(bad, "w").write("patient_id,dicom_patient_id\na,X\nb,X\n")
    p = run(FEDFUSE, "import", "dicom", "--in", pacs, "--map", bad, "--out",
            os.path.join(WORK, "bad"), ok=False)
    check(p.returncode == 2 and "bad-map.csv:3: dicom_patient_id appears on an earlier line"
          in p.stderr, "duplicate map key names file:line")

    print(f"{len(FAILS)} failed" if FAILS else "all DICOM oracle checks passed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
