#!/usr/bin/env python3
"""Compares two PEFT adapter directories tensor by tensor, read independently of fedlora's C code.

usage: adapter_diff.py DIR_A DIR_B TOL
Passes when every tensor of A exists in B with the same shape and max|a - b| <= TOL * max|b| over
each tensor (a relative tolerance on the tensor's scale: elements near zero carry the absolute
error of their larger neighbours' summations). Prints one line per tensor and exits 1 on failure,
and also when the two are bit-identical to a model that never trained (all of B's tensors zero)."""
import json
import struct
import sys


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {info['dtype']}, this checker reads F32")
        start, end = info["data_offsets"]
        count = (end - start) // 4
        out[name] = (tuple(info["shape"]), struct.unpack_from(f"<{count}f", blob, base + start))
    return out


def main():
    a_dir, b_dir, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    a = read_safetensors(f"{a_dir}/adapter_model.safetensors")
    b = read_safetensors(f"{b_dir}/adapter_model.safetensors")
    ok = set(a) == set(b) and len(a) > 0
    if not ok:
        print(f"FAIL tensor names differ: {sorted(set(a) ^ set(b))}")
    worst = 0.0
    nonzero = False
    for name in sorted(set(a) & set(b)):
        (sa, va), (sb, vb) = a[name], b[name]
        if sa != sb:
            print(f"FAIL {name}: shape {sa} vs {sb}")
            ok = False
            continue
        scale = max(abs(x) for x in vb)
        nonzero = nonzero or scale > 0
        diff = max(abs(x - y) for x, y in zip(va, vb))
        rel = diff / scale if scale > 0 else diff
        worst = max(worst, rel)
        good = diff <= tol * scale
        ok = ok and good
        print(f"{'ok  ' if good else 'FAIL'} {name} {sa}: max|a-b| {diff:.3g}, max|b| {scale:.3g}, relative {rel:.3g}")
    if not nonzero:
        print("FAIL every tensor of B is zero: nothing was trained")
        ok = False
    print(f"worst relative difference {worst:.3g} (tolerance {tol:g})")
    sys.exit(0 if ok else 1)


main()
