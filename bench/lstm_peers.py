#!/usr/bin/env python3
"""lowbit's integer LSTM against its peers, in one run, on one thread.

One LSTM layer with input width = hidden width H (default H = 256, 512, 1024), one sequence of
--steps (100) time steps at batch --batch (1), state starting at zero. Measured, each on one
thread (--threads):

  lowbit int8   `lowbit --threads N bench lstm --hidden ... --steps T --batch B --json`: the
                integer-only 8x8_16 LSTM (TFLite's scheme) and lowbit's float32 LSTM;
  PyTorch f32   torch.nn.LSTM, inference mode;
  PyTorch int8  torch.nn.LSTM after dynamic quantization (int8 weights, activations quantized
                on the fly per step, float gates);
  LiteRT int8   a tf.keras LSTM converted with full-integer post-training quantization (the
                same 8x8_16 UNIDIRECTIONAL_SEQUENCE_LSTM kernel), LiteRT's interpreter.

Every engine runs once per round, interleaved, for --repeats rounds after one warm-up pass:
each Python peer one pass, lowbit one `bench lstm` call (the median of its own repeated passes
over --lowbit-min-time seconds). The table gives each engine's median as microseconds per time
step. The speed-ups are computed per round (peer time / lowbit int8 time in the same round, so
that both sides of a ratio see the same load on a shared machine); the table gives their median
over the rounds, and the JSON also the minimum and maximum (> 1: lowbit int8 is faster).

Run `bash scripts/bench-env.sh` once, build lowbit (`bash scripts/build.sh`), then from the
repository root:

    .venv-bench/bin/python bench/lstm_peers.py
    .venv-bench/bin/python bench/lstm_peers.py --json > lstm.json
    .venv-bench/bin/python bench/lstm_peers.py --skip-lowbit --hidden 256

Progress goes to stderr; the table (or, with --json, one JSON object) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def log(*args):
    print("lstm_peers:", *args, file=sys.stderr, flush=True)


class BenchError(Exception):
    """A problem the user can fix; printed as one line."""


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def prepare_environment(threads: int) -> None:
    """Thread counts are fixed before torch or TensorFlow are imported."""
    n = str(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = n
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# --------------------------------------------------------------------------------------------
# Timing.


class Runner:
    def __init__(self, engine: str, hidden: int, fn):
        self.engine, self.hidden, self.fn = engine, hidden, fn
        self.times: list[float] = []


def time_interleaved(runners: list[Runner], repeats: int, lowbit_round=None) -> list[list[dict]]:
    """Runs every runner once per round; `lowbit_round()` (if given) once per round as well.
    Returns lowbit's results, one list per round."""
    for r in runners:  # warm-up
        r.fn()
    lowbit_rounds = []
    for i in range(repeats):
        for r in runners:
            t0 = time.perf_counter()
            r.fn()
            r.times.append(time.perf_counter() - t0)
        if lowbit_round is not None:
            lowbit_rounds.append(lowbit_round())
        log(f"round {i + 1} of {repeats} done")
    return lowbit_rounds


# --------------------------------------------------------------------------------------------
# PyTorch.


def torch_runners(args, torch, np):
    runners = []
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # older layouts
        from torch.quantization import quantize_dynamic
    engines = torch.backends.quantized.supported_engines
    for engine in ("fbgemm", "x86", "onednn", "qnnpack"):  # x86 back ends first
        if engine in engines:
            torch.backends.quantized.engine = engine
            break
    for h in args.hidden:
        torch.manual_seed(args.seed)
        lstm = torch.nn.LSTM(input_size=h, hidden_size=h).eval()
        qlstm = quantize_dynamic(lstm, {torch.nn.LSTM}, dtype=torch.qint8).eval()
        x = torch.from_numpy(np.random.default_rng(args.seed).uniform(
            -1, 1, (args.steps, args.batch, h)).astype(np.float32))

        def run(model=None, x=x):
            with torch.inference_mode():
                model(x)

        runners.append(Runner("pytorch_f32", h, lambda m=lstm, x=x: run(m, x)))
        runners.append(Runner("pytorch_int8_dynamic", h, lambda m=qlstm, x=x: run(m, x)))
    return runners, {"torch": torch.__version__,
                     "torch_quantized_engine": torch.backends.quantized.engine}


# --------------------------------------------------------------------------------------------
# LiteRT.


def litert_model(tf, np, h: int, steps: int, batch: int, seed: int) -> bytes:
    """A tf.keras LSTM [batch, steps, h] -> [batch, steps, h], full-integer quantized."""
    rng = np.random.default_rng(seed)
    inp = tf.keras.Input(shape=(steps, h), batch_size=batch)
    layer = tf.keras.layers.LSTM(h, return_sequences=True)
    model = tf.keras.Model(inp, layer(inp))
    samples = [rng.uniform(-1, 1, (batch, steps, h)).astype(np.float32) for _ in range(4)]

    def gen():
        for x in samples:
            yield [x]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def litert_runners(args, np):
    try:
        import tensorflow as tf
        from ai_edge_litert import interpreter as litert
    except ImportError as e:
        raise BenchError(f"cannot import TensorFlow / LiteRT ({e}); run `bash scripts/bench-env.sh` "
                         "and use .venv-bench/bin/python, or pass --skip-litert") from e
    runners, ops = [], {}
    for h in args.hidden:
        log(f"LiteRT: converting a {h}-unit Keras LSTM (full-integer quantization)")
        fb = litert_model(tf, np, h, args.steps, args.batch, args.seed)
        it = litert.Interpreter(model_content=fb, num_threads=args.threads)
        it.allocate_tensors()
        ops[h] = sorted({o["op_name"] for o in it._get_ops_details()})
        if "UNIDIRECTIONAL_SEQUENCE_LSTM" not in ops[h]:
            raise BenchError(f"the converter did not produce UNIDIRECTIONAL_SEQUENCE_LSTM: {ops[h]}")
        inp = it.get_input_details()[0]
        x = np.random.default_rng(args.seed).integers(-128, 128, inp["shape"]).astype(np.int8)

        def run(it=it, index=inp["index"], x=x):
            # Every pass starts from the zero state, as the other engines do.
            it.reset_all_variables()
            it.set_tensor(index, x)
            it.invoke()

        runners.append(Runner("litert_int8", h, run))
    return runners, {"tensorflow": tf.__version__,
                     "ai_edge_litert": metadata.version("ai-edge-litert")}, ops


# --------------------------------------------------------------------------------------------
# lowbit through its command-line program.


def lowbit_program(build: Path) -> Path:
    exe = build / "lowbit"
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise BenchError(f"lowbit program not found at {exe}: build it with `bash scripts/build.sh`, "
                         "pass --build DIR for another build folder, or use --skip-lowbit")
    return exe


def check_lowbit_bench_lstm(exe: Path) -> None:
    proc = subprocess.run([str(exe), "bench", "lstm", "--help"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"{exe} has no `bench lstm` command (this build predates the LSTM "
                         "runtime): build a newer lowbit or use --skip-lowbit")


def bench_lowbit(args) -> list[dict]:
    exe = lowbit_program(args.build)
    cmd = [str(exe), "--threads", str(args.threads), "bench", "lstm",
           "--hidden", ",".join(map(str, args.hidden)), "--steps", str(args.steps),
           "--batch", str(args.batch), "--min-time", str(args.lowbit_min_time), "--json"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BenchError(f"`{' '.join(cmd)}` exited with status {proc.returncode}: " + " | ".join(tail))
    try:
        rep = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise BenchError(f"`lowbit bench lstm --json` printed no JSON ({e}): {proc.stdout[:200]}")
    return lowbit_results(rep)


def lowbit_results(rep) -> list[dict]:
    """[{hidden, precision ('int8' | 'f32'), us_per_step}] from `lowbit bench lstm --json`:
    {"results": [{"hidden", "impl": "f32" | "int8", "seconds" (one run), "steps", ...}]}."""
    rows = rep.get("results", rep) if isinstance(rep, dict) else rep
    out = []
    for r in rows:
        prec = str(r.get("impl", r.get("precision", "")))
        prec = "int8" if prec.startswith(("int", "i8")) else "f32" if prec.startswith(("f", "F")) else prec
        if "us_per_step" in r:
            us = float(r["us_per_step"])
        elif "seconds_per_step" in r:
            us = 1e6 * float(r["seconds_per_step"])
        elif "steps_per_second" in r:
            us = 1e6 / float(r["steps_per_second"])
        elif "seconds" in r and "steps" in r:
            us = 1e6 * float(r["seconds"]) / float(r["steps"])
        else:
            raise BenchError(f"cannot read a time per step from lowbit's result {r}")
        out.append({"hidden": int(r["hidden"]), "precision": prec, "us_per_step": us, "raw": r})
    return out


# --------------------------------------------------------------------------------------------
# Report.

ENGINES = [("lowbit_int8", "lowbit int8"), ("lowbit_f32", "lowbit f32"),
           ("pytorch_f32", "PyTorch f32"), ("pytorch_int8_dynamic", "PyTorch int8 dyn"),
           ("litert_int8", "LiteRT int8")]


def build_report(args, res) -> dict:
    # Per hidden width and engine: microseconds per step in each round.
    per_round: dict[int, dict[str, list[float]]] = {h: {} for h in args.hidden}
    for r in res["runners"]:
        per_round[r.hidden][r.engine] = [1e6 * t / args.steps for t in r.times]
    for rnd in res.get("lowbit", []):
        for r in rnd:
            if r["hidden"] in per_round:
                per_round[r["hidden"]].setdefault(f"lowbit_{r['precision']}", []).append(r["us_per_step"])
    table = {h: {k: {"us_per_step": statistics.median(v), "us_per_step_rounds": v} for k, v in row.items()}
             for h, row in per_round.items()}
    ratios = {}
    for h, row in per_round.items():
        if "lowbit_int8" not in row:
            continue
        mine = row["lowbit_int8"]
        ratios[h] = {}
        for k, _ in ENGINES[1:]:
            if k not in row:
                continue
            each = [p / m for p, m in zip(row[k], mine)]
            ratios[h][f"{k}/lowbit_int8"] = statistics.median(each)
            ratios[h][f"{k}/lowbit_int8 rounds"] = each
    return {
        "benchmark": "lstm_peers",
        "config": {"hidden": args.hidden, "steps": args.steps, "batch": args.batch,
                   "threads": args.threads, "repeats": args.repeats, "input_width": "hidden",
                   "lowbit_min_time": args.lowbit_min_time},
        "machine": {"cpu": cpu_name(), "python": platform.python_version()},
        "versions": res["versions"],
        "litert_ops": res.get("litert_ops", {}),
        "us_per_step": table,
        "speedup_of_lowbit_int8": ratios,
        "load_average": res["load_average"],
    }


def print_table(rep) -> None:
    c = rep["config"]
    print(f"LSTM, input = hidden, {c['steps']} steps, batch {c['batch']}, {c['threads']} thread(s); "
          f"median of {c['repeats']}; {rep['machine']['cpu']}")
    print("microseconds per time step")
    print(f"  {'hidden':>6}" + "".join(f"{name:>18}" for _, name in ENGINES))
    for h, row in rep["us_per_step"].items():
        cells = "".join(f"{row[k]['us_per_step']:>18.1f}" if k in row else f"{'-':>18}"
                        for k, _ in ENGINES)
        print(f"  {h:>6}{cells}")
    if rep["speedup_of_lowbit_int8"]:
        print("speed-up of lowbit int8 (peer time / lowbit int8 time in the same round; median over the "
              "rounds, [min, max] below; > 1: lowbit int8 faster)")
        print(f"  {'hidden':>6}" + "".join(f"{'vs ' + name:>21}" for _, name in ENGINES[1:]))
        for h, r in rep["speedup_of_lowbit_int8"].items():
            cells = "".join(f"{r[k + '/lowbit_int8']:>21.2f}" if k + "/lowbit_int8" in r else f"{'-':>21}"
                            for k, _ in ENGINES[1:])
            print(f"  {h:>6}{cells}")
            span = "".join(f"{'[%.1f, %.1f]' % (min(r[k + '/lowbit_int8 rounds']), max(r[k + '/lowbit_int8 rounds'])):>21}"
                           if k + "/lowbit_int8" in r else f"{'':>21}" for k, _ in ENGINES[1:])
            print(f"  {'':>6}{span}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()))
    la = rep["load_average"]
    print(f"load average: {la['start']:.2f} at start, {la['end']:.2f} at end")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Speed of lowbit's integer LSTM against PyTorch (float, dynamic int8) and "
        "LiteRT (integer), in one run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--hidden", default="256,512,1024", help="comma-separated hidden widths")
    p.add_argument("--steps", type=int, default=100, help="time steps per sequence")
    p.add_argument("--batch", type=int, default=1, help="sequences in parallel")
    p.add_argument("--threads", type=int, default=1, help="threads for every engine")
    p.add_argument("--repeats", type=int, default=10, help="rounds: timed passes per engine (median)")
    p.add_argument("--lowbit-min-time", type=float, default=0.3,
                   help="seconds of repeated passes in each round's `lowbit bench lstm` call")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--build", type=Path, default=REPO / "build", help="lowbit build folder")
    p.add_argument("--skip-lowbit", action="store_true", help="run only the Python peers")
    p.add_argument("--skip-litert", action="store_true", help="leave out LiteRT")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--output", type=Path, default=None, help="also write the JSON report here")
    args = p.parse_args(argv)
    try:
        args.hidden = [int(h) for h in args.hidden.split(",")]
    except ValueError:
        p.error(f"--hidden: expected comma-separated integers, got '{args.hidden}'")
    if min(args.hidden) < 1 or args.steps < 1 or args.batch < 1 or args.threads < 1 or args.repeats < 1:
        p.error("--hidden, --steps, --batch, --threads and --repeats must be at least 1")
    if args.lowbit_min_time < 0:
        p.error("--lowbit-min-time must not be negative")
    args.build = args.build if args.build.is_absolute() else Path.cwd() / args.build
    return args


def main(argv=None):
    args = parse_args(argv)
    prepare_environment(args.threads)
    # Fail early, before minutes of peer runs, when lowbit cannot be run.
    if not args.skip_lowbit:
        check_lowbit_bench_lstm(lowbit_program(args.build))
    try:
        import numpy as np
        import torch
    except ImportError as e:
        raise BenchError(f"cannot import PyTorch ({e}); run `bash scripts/bench-env.sh` and use "
                         ".venv-bench/bin/python") from e
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    load_start = os.getloadavg()[0]
    if load_start > 0.5:
        log(f"warning: load average {load_start:.1f} before the run: other work on this "
            "machine skews the timings")
    runners, versions = torch_runners(args, torch, np)
    versions["numpy"] = np.__version__
    res = {"versions": versions}
    if not args.skip_litert:
        more, v, ops = litert_runners(args, np)
        runners += more
        versions.update(v)
        res["litert_ops"] = ops
    lowbit_round = None
    if not args.skip_lowbit:
        bench_lowbit(args)  # warm-up, and a failure before the timed rounds
        lowbit_round = lambda: bench_lowbit(args)  # noqa: E731
    log(f"timing {len(runners) + (2 * len(args.hidden) if lowbit_round else 0)} configurations, "
        f"interleaved, {args.repeats} rounds")
    res["lowbit"] = time_interleaved(runners, args.repeats, lowbit_round)
    res["runners"] = runners
    res["load_average"] = {"start": load_start, "end": os.getloadavg()[0]}
    rep = build_report(args, res)
    if args.output:
        args.output.write_text(json.dumps(rep, indent=2) + "\n")
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print_table(rep)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"lstm_peers: error: {e}", file=sys.stderr)
        sys.exit(1)
