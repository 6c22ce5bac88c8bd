#!/usr/bin/python3
"""Benchmark of `fedfuse import dicom` (issue 28): N synthetic DICOM files made here, imported on
one core; files/s, CPU seconds and peak RSS of the importer, and DCMTK's dcm2pnm measured in
the same run on the same files as the peer (one dcm2pnm process per file, the way a hospital
script would call it; a subset of --peer files, its rate extrapolated per file).

The files: four templates made with DCMTK's dump2dcm (16-bit 512 x 512 CR with rescale and a
stored window, 12-bit 256 x 256, 8-bit MONOCHROME1 256 x 320, 16-bit 400 x 300 RLE via dcmcrle),
copied N times with a distinct PatientID each, 100 files per folder, two folder levels deep.

usage: ingest_bench.py FEDFUSE [--files 10000] [--peer 300] [--size 64] [--work DIR] [--keep]
prints `name value` lines (ingest_dicom_files_per_s, ..._ratio_dcm2pnm); exit 1 on a failure.
"""
import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import time


def run_measured(cmd):
    """Runs cmd, returns (wall s, user+sys s, max RSS MiB) of that process alone."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    out = p.stdout.read().decode()
    err = p.stderr.read().decode()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{out}{err}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, out


def template(work, name, rows, cols, bits, stored, photometric, extra=""):
    rng = random.Random(name)
    n = rows * cols
    raw = os.path.join(work, name + ".raw")
    if bits == 8:
        data = bytes(rng.randrange(256) for _ in range(n))
    else:
        data = struct.pack("<%dH" % n, *(rng.randrange(1 << stored) for _ in range(n)))
    open(raw, "wb").write(data)
    dump = os.path.join(work, name + ".dump")
    open(dump, "w").write(f"""(0008,0016) UI =ComputedRadiographyImageStorage
(0008,0018) UI 1.2.826.0.1.3680043.2.1143.{rng.randrange(10**9)}
(0008,0020) DA 20200101
(0008,0060) CS CR
(0010,0010) PN Bench^Patient
(0010,0020) LO P0000000
(0018,0015) CS CHEST
(0018,5101) CS PA
(0028,0002) US 1
(0028,0004) CS {photometric}
(0028,0010) US {rows}
(0028,0011) US {cols}
(0028,0100) US {bits}
(0028,0101) US {stored}
(0028,0102) US {stored - 1}
(0028,0103) US 0
{extra}(7fe0,0010) {'OB' if bits == 8 else 'OW'} ={raw}
""")
    path = os.path.join(work, name + ".dcm")
    subprocess.run(["dump2dcm", "+te", "-g", dump, path], check=True)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fedfuse")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--peer", type=int, default=300)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--work", default="ingest-bench")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    tdir = os.path.join(a.work, "templates")
    os.makedirs(tdir)
    t16 = template(tdir, "cr16", 512, 512, 16, 16, "MONOCHROME2",
                   "(0028,1050) DS 30000\n(0028,1051) DS 40000\n(0028,1052) DS -1024\n"
                   "(0028,1053) DS 1\n")
    t12 = template(tdir, "cr12", 256, 256, 16, 12, "MONOCHROME2",
                   "(0028,1050) DS 2048\n(0028,1051) DS 4096\n")
    t8 = template(tdir, "m1", 256, 320, 8, 8, "MONOCHROME1")
    src = template(tdir, "rle_src", 400, 300, 16, 16, "MONOCHROME2")
    trle = os.path.join(tdir, "rle.dcm")
    subprocess.run(["dcmcrle", src, trle], check=True)
    blobs = [open(p, "rb").read() for p in (t16, t12, t8, trle)]
    for b in blobs:
        assert b.count(b"P0000000") == 1
    pacs = os.path.join(a.work, "pacs")
    files = []
    t0 = time.monotonic()
    with open(os.path.join(a.work, "map.csv"), "w") as m:
        m.write("patient_id,dicom_patient_id\n")
        for i in range(a.files):
            d = os.path.join(pacs, f"{i // 10000:02d}", f"{i // 100 % 100:02d}")
            if i % 100 == 0:
                os.makedirs(d, exist_ok=True)
            path = os.path.join(d, f"IM{i:06d}")
            open(path, "wb").write(blobs[i % len(blobs)].replace(b"P0000000", b"P%07d" % i))
            files.append(path)
            m.write(f"site-{i},P{i:07d}\n")
    made = time.monotonic() - t0
    mb = sum(os.path.getsize(f) for f in files) / 2**20

    out = os.path.join(a.work, "site")
    wall, cpu, rss, text = run_measured([a.fedfuse, "import", "dicom", "--in", pacs, "--map",
                                         os.path.join(a.work, "map.csv"), "--out", out,
                                         "--size", str(a.size)])
    want = f"{a.files} images written"
    if want not in text:
        sys.exit(f"expected '{want}':\n{text}")

    step = max(1, len(files) // max(1, a.peer))
    pdir = os.path.join(a.work, "peer")
    os.makedirs(pdir)
    pw, pc, npeer = 0.0, 0.0, 0
    for i in range(0, len(files), step)[: a.peer]:
        kind = i % len(blobs)  # 0, 1 stored window; 3 RLE (dcmj2pnm has the decoder)
        cmd = ["dcmj2pnm" if kind == 3 else "dcm2pnm", "--write-png"]
        cmd += ["+Wi", "1"] if kind < 2 else []
        cmd += ["+Sxv", str(a.size), files[i], os.path.join(pdir, f"{i}.png")]
        w, c, _, _ = run_measured(cmd)
        pw += w
        pc += c
        npeer += 1
    peer = range(npeer)
    rate, prate = a.files / wall, len(peer) / pw
    print(f"ingest_dicom_files {a.files}  # {mb:.0f} MiB made in {made:.1f} s")
    print(f"ingest_dicom_files_per_s {rate:.0f}")
    print(f"ingest_dicom_cpu_files_per_s {a.files / cpu:.0f}")
    print(f"ingest_dicom_peak_rss_mb {rss:.1f}")
    print(f"ingest_dicom_dcm2pnm_files_per_s {prate:.0f}  # {len(peer)} files, one process each")
    print(f"ingest_dicom_dcm2pnm_cpu_files_per_s {len(peer) / pc:.0f}")
    print(f"ingest_dicom_ratio_dcm2pnm {rate / prate:.2f}")
    if not a.keep:
        shutil.rmtree(a.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
