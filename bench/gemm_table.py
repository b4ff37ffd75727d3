#!/usr/bin/env python3
"""Turns `lowbit bench gemm --json` outputs (one per thread count) into a Markdown table.

Usage: gemm_table.py ONE_THREAD.json [TWO_THREADS.json]
"""
import json
import sys


def load(path):
    with open(path) as f:
        j = json.load(f)
    table = {}
    for r in j["results"]:
        table[(r["m"], r["n"], r["k"], r["impl"])] = r
    return j, table


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    j1, t1 = load(argv[1])
    t2 = load(argv[2])[1] if len(argv) > 2 else {}
    shapes = sorted({k[:3] for k in t1}, key=lambda s: -s[0] * s[1] * s[2])
    impls = ["f32", "int8", "onednn_s8", "binary"]
    print(f"CPU: {j1.get('cpu', '?')}, instruction-set cap {j1.get('max_isa', '?')}; GOPS = 2·M·N·K / median seconds.\n")
    head = "| M x N x K | " + " | ".join(f"{i} GOPS (1 thr)" for i in impls)
    head += " | binary / f32 | binary / int8 | int8 / oneDNN s8 |"
    if t2:
        head += " int8 2 thr / 1 thr | binary 2 thr / 1 thr |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for s in shapes:
        g = {i: t1[s + (i,)]["ops_per_second"] / 1e9 for i in impls}
        row = f"| {s[0]} x {s[1]} x {s[2]} | " + " | ".join(f"{g[i]:.0f}" for i in impls)
        row += f" | {g['binary'] / g['f32']:.1f}x | {g['binary'] / g['int8']:.2f}x | {g['int8'] / g['onednn_s8']:.2f}x |"
        if t2:
            s8 = t2[s + ("int8",)]["ops_per_second"] / 1e9 / g["int8"]
            sb = t2[s + ("binary",)]["ops_per_second"] / 1e9 / g["binary"]
            row += f" {s8:.2f}x | {sb:.2f}x |"
        print(row)
    kernels = {r["impl"]: r.get("kernel", "") for r in json.load(open(argv[1]))["results"] if r["m"] > 1}
    print("\nKernels: " + ", ".join(f"{k} = `{v}`" for k, v in kernels.items()))


if __name__ == "__main__":
    main(sys.argv)
