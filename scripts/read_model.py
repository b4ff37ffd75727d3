#!/usr/bin/env python3
"""Load every tensor of a lowbit model file with json and numpy alone (docs/formats.md).

Usage: read_model.py MODEL   -- prints the metadata keys and one line per tensor.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": "<f4", "I8": "i1", "U8": "u1", "I16": "<i2", "I32": "<i4", "U64": "<u8"}


def read_model(path):
    """Returns (metadata dict, {name: numpy array})."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__")
    if meta.get("format") != "lowbit":
        raise ValueError(f"{path}: not a lowbit model file")
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]])
        tensors[name] = arr.reshape(e["shape"])
    return meta, tensors


def unpack_signs(words, k):
    """Packed U64 rows [rows, words_per_row] -> int8 ±1 [rows, k] (bit j of a row is bit j % 64
    of word j // 64; bit 1 = +1)."""
    bits = np.unpackbits(words.view(np.uint8).reshape(words.shape[0], -1), axis=1, bitorder="little")
    return (bits[:, :k].astype(np.int8) * 2 - 1)


def main():
    meta, tensors = read_model(sys.argv[1])
    print("metadata:", ", ".join(sorted(meta)))
    layers = meta.get("model", {}).get("layers", [])
    for name, arr in tensors.items():
        print(f"{name} {arr.dtype} {list(arr.shape)}")
    for i, layer in enumerate(layers):
        if layer.get("input") == "bits":
            w = unpack_signs(tensors[f"layers.{i}.weight"], layer["weight_bits"])
            print(f"layers.{i}.weight unpacked {list(w.shape)} sum {int(w.sum())}")


if __name__ == "__main__":
    main()
