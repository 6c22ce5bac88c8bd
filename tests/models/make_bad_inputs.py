#!/usr/bin/python3
"""Writes the CLI contract fixtures in tests/models/data/ from the golden tiny inputs: two
samples each, one valid file and one file per kind of bad input. Run with /usr/bin/python3
(numpy); the outputs are committed, so the tests need no Python."""
import json, os, struct
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
DT = {"F32": np.float32, "I32": np.int32, "F64": np.float64}


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=DT[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def write(path, tensors):
    hdr, blobs, off = {}, [], 0
    for k, t in tensors.items():
        t = np.ascontiguousarray(t)
        dt = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.float64): "F64"}[t.dtype]
        b = t.tobytes()
        hdr[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


src = read(os.path.join(here, "golden", "tiny_cross_inputs.safetensors"))
good = {k: v[:2] for k, v in src.items()}
out = os.path.join(here, "data")
os.makedirs(out, exist_ok=True)
write(os.path.join(out, "tiny_good.safetensors"), good)

bad = dict(good); bad["text_ids"] = good["text_ids"].copy(); bad["text_ids"][1, 3] = 2048
write(os.path.join(out, "tiny_bad_vocab.safetensors"), bad)
bad = dict(good); bad["ehr_code"] = good["ehr_code"].astype(np.float32)
write(os.path.join(out, "tiny_bad_dtype.safetensors"), bad)
bad = dict(good); del bad["labels"]
write(os.path.join(out, "tiny_bad_missing.safetensors"), bad)
bad = dict(good); bad["image"] = good["image"].copy(); bad["image"][1, 0, 2, 5] = np.nan
write(os.path.join(out, "tiny_bad_nan.safetensors"), bad)
bad = dict(good); bad["text_ids"] = good["text_ids"][:, :31]
write(os.path.join(out, "tiny_bad_shape.safetensors"), bad)
bad = dict(good); bad["image_present"] = good["image_present"].copy(); bad["image_present"][0] = 0
bad["text_ids"] = good["text_ids"].copy(); bad["text_ids"][0] = 0
bad["ehr_code"] = good["ehr_code"].copy(); bad["ehr_code"][0] = 0
write(os.path.join(out, "tiny_bad_empty.safetensors"), bad)
