#!/usr/bin/env python3
"""lowbit's MNIST binary MLP against its peers, in one run, on one thread count.

The network (Hubara et al., BNN; default 784-3x1024-10, lowbit's mnist-bnn-fast recipe):

    x in [-1, 1]^784 -> [binary dense H -> BN -> hardtanh -> sign] x L -> binary dense 10 -> BN

Binary dense = x @ sign(W) with latent W clipped to [-1, 1] after every step; sign(0) = +1;
sign's gradient is the straight-through estimator cancelled where |x| > 1 (the hardtanh).
Squared hinge loss against +-1 one-hot targets, Adam, batch 100.

Measured (all on --threads N):
  training   seconds per epoch: PyTorch (STE as a custom autograd function) and lowbit
             (`lowbit train`, reading `seconds` from metrics.jsonl);
  inference  images/s at batch 100 and batch 1: PyTorch fp32 (BN folded into the dense layers;
             BLAS and oneDNN paths, the faster one is the peer), Larq Compute Engine (the same
             net built in larq, converted and run by LCE's interpreter), and lowbit
             (`lowbit eval --json`);
  size       float32 bytes (4 x parameters) against lowbit's model file.

Run `bash scripts/bench-env.sh` once, then from the repository root:

    .venv-bench/bin/python bench/bnn_mlp_peers.py --threads 2
    .venv-bench/bin/python bench/bnn_mlp_peers.py --skip-lowbit --json

Progress goes to stderr; the table (or, with --json, one JSON object) to stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import statistics
import subprocess
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent

# Targets lowbit is held to (ratios printed with a pass/fail mark).
TARGET_TRAIN_RATIO = 1.0  # lowbit seconds / PyTorch seconds per epoch, at most
TARGET_FLOAT_SPEEDUP = 10.0  # lowbit / PyTorch fp32 images/s at batch 100, at least
TARGET_LCE_SPEEDUP = 1.0  # lowbit / LCE images/s at batch 100, more than
TARGET_SIZE_RATIO = 25.0  # float32 bytes / lowbit model bytes, at least


def log(*args):
    print("bnn_mlp_peers:", *args, file=sys.stderr, flush=True)


class BenchError(Exception):
    """A problem the user can fix; printed as one line."""


# --------------------------------------------------------------------------------------------
# Threads and libraries: fixed before torch or TensorFlow are imported.


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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
    n = str(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n
    # OpenBLAS 0.3.21 takes some AVX-512 CPUs (Zen 4/5) for Haswell and runs its AVX2 kernels
    # at half speed: give the float peer its best kernels. A value set by the user wins.
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= cpu_flags():
        os.environ.setdefault("OPENBLAS_CORETYPE", "SKYLAKEX")
    # larq needs Keras 2 (the tf-keras package); TensorFlow >= 2.16 defaults to Keras 3.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def blas_core_name() -> str | None:
    """The BLAS torch was built with: MKL (PyPI wheels), or OpenBLAS and the name of the kernels
    it chose (Debian's torch, which links the system's libblas)."""
    import ctypes

    try:
        import torch

        config = torch.__config__.show()
        if "BLAS_INFO=mkl" in config:
            return "MKL"
    except (ImportError, AttributeError):
        pass
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            lib = ctypes.CDLL(name)
            fn = lib.openblas_get_corename
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_char_p
        return f"OpenBLAS {fn().decode()}"
    return None


# --------------------------------------------------------------------------------------------
# MNIST (IDX files, gzip).


def read_idx(path: Path, magic: int, ndim: int):
    import numpy as np

    if not path.exists():
        raise BenchError(f"MNIST file {path} is missing (expected the four IDX .gz files of MNIST)")
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = np.frombuffer(data, dtype=">i4", count=1 + ndim)
    if header[0] != magic:
        raise BenchError(f"{path}: magic number {header[0]}, expected {magic} (not an IDX file?)")
    shape = tuple(int(d) for d in header[1:])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 * (1 + ndim))
    if body.size != math.prod(shape):
        raise BenchError(f"{path}: {body.size} bytes of data, header says {shape}")
    return body.reshape(shape)


def load_mnist(folder: Path, n_train: int):
    """Pixels scaled to [-1, 1] (784 floats per image), labels 0..9.

    Training uses the first n_train images of the 60k training set (50k leaves the last 10k
    for validation, as in the paper); inference is timed on the 10k test images."""
    import numpy as np

    def images(name):
        x = read_idx(folder / name, 2051, 3)
        return (x.reshape(len(x), -1).astype(np.float32) * (2.0 / 255.0) - 1.0)

    def labels(name):
        return read_idx(folder / name, 2049, 1).astype(np.int64)

    x_train = images("train-images-idx3-ubyte.gz")
    y_train = labels("train-labels-idx1-ubyte.gz")
    x_test = images("t10k-images-idx3-ubyte.gz")
    y_test = labels("t10k-labels-idx1-ubyte.gz")
    if not 0 < n_train <= len(x_train):
        raise BenchError(f"--train-images {n_train}: expected 1..{len(x_train)}")
    return x_train[:n_train], y_train[:n_train], x_test, y_test


# --------------------------------------------------------------------------------------------
# Timing helpers.


@dataclasses.dataclass
class Runner:
    """One timed configuration: run() pushes `images` images through at `batch`."""

    engine: str
    variant: str
    batch: int
    images: int
    run: Callable[[], None]
    times: list[float] = dataclasses.field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / statistics.median(self.times)


def time_interleaved(runners: list[Runner], repeats: int, per_round=None) -> list:
    """One warm-up pass of every runner, then `repeats` rounds in which every runner runs
    once, and `per_round()` (lowbit's own timed evaluation) once if given: a load that comes
    and goes on the machine falls on all peers alike. Returns per_round's results, in order."""
    for r in runners:
        r.run()
    extra = []
    for i in range(repeats):
        for r in runners:
            t0 = time.perf_counter()
            r.run()
            r.times.append(time.perf_counter() - t0)
        if per_round is not None:
            extra.append(per_round())
        log(f"inference round {i + 1} of {repeats} done")
    return extra


def batches_of(x, batch: int):
    """Contiguous float32 batches of exactly `batch` rows (the tail that does not fill one is
    dropped)."""
    import numpy as np

    n = (len(x) // batch) * batch
    return [np.ascontiguousarray(x[i : i + batch]) for i in range(0, n, batch)]


# --------------------------------------------------------------------------------------------
# PyTorch: the binary MLP, trained.


def torch_binary_modules():
    """The BNN building blocks in PyTorch (also used by bnn_curve_torch.py): SignSTE, sign with
    sign(0) = +1 whose backward passes the gradient where |x| <= 1 (hardtanh), and BinaryDense,
    x @ sign(W) over latent weights uniform in [-1, 1], with the paper's per-layer step scale
    1/sqrt(1.5 / (fan_in + fan_out)) as `lr_scale`."""
    import torch
    from torch import nn

    class SignSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.ones_like(x).masked_fill_(x < 0, -1.0)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (x.abs() <= 1).to(grad.dtype)

    class BinaryDense(nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(n_out, n_in).uniform_(-1.0, 1.0))
            self.lr_scale = 1.0 / math.sqrt(1.5 / (n_in + n_out))

        def forward(self, x):
            return nn.functional.linear(x, SignSTE.apply(self.weight))

    return SignSTE, BinaryDense


def torch_bnn(hidden: int, depth: int, seed: int):
    import torch
    from torch import nn

    SignSTE, BinaryDense = torch_binary_modules()

    class BinaryMLP(nn.Module):
        def __init__(self):
            super().__init__()
            sizes = [784] + [hidden] * depth
            self.dense = nn.ModuleList(
                [BinaryDense(a, b) for a, b in zip(sizes[:-1], sizes[1:])] + [BinaryDense(hidden, 10)]
            )
            self.bn = nn.ModuleList(
                [nn.BatchNorm1d(hidden, eps=1e-4, momentum=0.1) for _ in range(depth)]
                + [nn.BatchNorm1d(10, eps=1e-4, momentum=0.1)]
            )

        def forward(self, x):
            for dense, bn in zip(self.dense[:-1], self.bn[:-1]):
                # hardtanh then sign: one STE whose backward carries the hardtanh mask
                x = SignSTE.apply(bn(dense(x)))
            return self.bn[-1](self.dense[-1](x))

    torch.manual_seed(seed)
    return BinaryMLP()


def squared_hinge(out, target_pm1):
    import torch

    return torch.clamp(1.0 - target_pm1 * out, min=0.0).pow(2).mean()


def train_torch(model, x_train, y_train, x_test, y_test, *, epochs: int, batch: int,
                lr: float, seed: int, warmup_steps: int):
    """Trains `epochs` epochs; returns per-epoch seconds, losses and the final test error."""
    import numpy as np
    import torch

    # Adam; binary weights get the paper's per-layer scale 1/sqrt(1.5 / (fan_in + fan_out)).
    groups = []
    for dense in model.dense:
        groups.append({"params": [dense.weight], "lr": lr * dense.lr_scale})
    groups.append({"params": [p for bn in model.bn for p in bn.parameters()], "lr": lr})
    opt = torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    latent = [d.weight for d in model.dense]

    x_all = torch.from_numpy(x_train)
    targets = -torch.ones(len(y_train), 10)
    targets[torch.arange(len(y_train)), torch.from_numpy(y_train)] = 1.0
    rng = np.random.default_rng(seed)
    steps = len(x_all) // batch

    def step(idx):
        xb = x_all.index_select(0, idx)
        tb = targets.index_select(0, idx)
        loss = squared_hinge(model(xb), tb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for w in latent:
                w.clamp_(-1.0, 1.0)
        return loss

    model.train()
    # Warm-up (allocator, thread pool, first-call paths): a few steps before the timed epochs.
    for _ in range(warmup_steps):
        step(torch.from_numpy(rng.choice(len(x_all), batch, replace=False)))

    seconds, losses = [], []
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x_all)))
        total = 0.0
        t0 = time.perf_counter()
        for s in range(steps):
            loss = step(order[s * batch : (s + 1) * batch])
            total += loss.item()
        seconds.append(time.perf_counter() - t0)
        losses.append(total / steps)
        log(f"PyTorch epoch {len(seconds)}: {seconds[-1]:.2f} s, train loss {losses[-1]:.4f}")

    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(torch.from_numpy(xb)).argmax(1) for xb in batches_of(x_test, 1000)])
    test_error = float((pred.numpy() != y_test[: len(pred)]).mean())
    return {"seconds_per_epoch": seconds, "train_loss": losses, "test_error": test_error,
            "images_per_epoch": steps * batch}


# --------------------------------------------------------------------------------------------
# PyTorch fp32 inference.


def torch_float_net(hidden: int, depth: int, seed: int):
    """The same layer sizes in fp32, BN folded into each dense layer's bias (as a float
    deployment would), hardtanh between layers. Weight values do not change the speed."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers, n_in = [], 784
    for _ in range(depth):
        layers += [nn.Linear(n_in, hidden), nn.Hardtanh()]
        n_in = hidden
    layers.append(nn.Linear(n_in, 10))
    return nn.Sequential(*layers).eval()


def torch_float_runners(net, x_test, batch1_images: int) -> list[Runner]:
    """PyTorch fp32 through its BLAS path and through its oneDNN (mkldnn) path."""
    import torch
    from torch.utils import mkldnn as mkldnn_utils

    variants = [("blas", net)]
    if torch.backends.mkldnn.is_available():
        # oneDNN's inner product for each dense layer (dense tensors in and out: oneDNN
        # tensors have no hardtanh, and plain 2-D layouts convert for free).
        variants.append(("onednn", mkldnn_utils.to_mkldnn(net)))
    runners = []
    for name, model in variants:
        for batch, x in ((100, x_test), (1, x_test[:batch1_images])):
            inputs = [torch.from_numpy(b) for b in batches_of(x, batch)]

            def run(model=model, inputs=inputs):
                with torch.inference_mode():
                    for xb in inputs:
                        model(xb)

            runners.append(Runner("pytorch_float", name, batch, len(inputs) * batch, run))
    return runners


# --------------------------------------------------------------------------------------------
# Larq + Larq Compute Engine.


def import_lce():
    try:
        import tensorflow as tf
        import larq
        import larq_compute_engine as lce
    except ImportError as e:
        raise BenchError(
            f"cannot import the LCE peer ({e}); run `bash scripts/bench-env.sh` and use "
            ".venv-bench/bin/python, or pass --skip-lce") from e
    return tf, larq, lce


def larq_model(tf, lq, hidden: int, depth: int, batch: int, as_conv: bool):
    """The binary MLP in larq with a fixed batch size (LCE's converter keeps it).

    as_conv=False: QuantDense layers, as a larq user would write the MLP. LCE has no binary
    fully-connected op, so these stay float FULLY_CONNECTED with +-1 weights.
    as_conv=True: each dense layer as the equivalent 1x1 QuantConv2D on a 1x1 image (LCE's
    documented workaround), which LCE converts to its binary convolution (LceBconv2d)."""
    binary = dict(kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)

    def dense(units, first):
        kw = dict(binary)
        if not first:
            kw["input_quantizer"] = "ste_sign"
        if as_conv:
            return lq.layers.QuantConv2D(units, 1, **kw)
        return lq.layers.QuantDense(units, **kw)

    def bn():
        return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-4)

    x = inp = tf.keras.Input(shape=(784,), batch_size=batch)
    if as_conv:
        x = tf.keras.layers.Reshape((1, 1, 784))(x)
    for i in range(depth):
        x = bn()(dense(hidden, first=(i == 0))(x))
    x = bn()(dense(10, first=False)(x))
    if as_conv:
        x = tf.keras.layers.Reshape((10,))(x)
    return tf.keras.Model(inp, x)


def copy_torch_weights(keras_model, torch_model, tf):
    """Puts the PyTorch-trained weights into the larq model so that LCE's answers can be
    checked against PyTorch's."""
    import numpy as np

    quant = [l for l in keras_model.layers if "quant" in l.__class__.__name__.lower()]
    bns = [l for l in keras_model.layers if isinstance(l, tf.keras.layers.BatchNormalization)]
    for layer, dense in zip(quant, torch_model.dense):
        w = dense.weight.detach().numpy().T  # (in, out)
        layer.set_weights([w.reshape(layer.get_weights()[0].shape).astype(np.float32)])
    for layer, bn in zip(bns, torch_model.bn):
        layer.set_weights([bn.weight.detach().numpy(), bn.bias.detach().numpy(),
                           bn.running_mean.numpy(), bn.running_var.numpy()])


def tflite_ops(flatbuffer: bytes) -> list[str]:
    """Operator names of the converted model, in execution order."""
    from larq_compute_engine.mlir.python import tflite_schema as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for code in model.operatorCodes:
        if code.customCode:
            c = code.customCode
            names.append(c.decode() if isinstance(c, bytes) else str(c))
        else:
            op = max(code.builtinCode or 0, code.deprecatedBuiltinCode or 0)
            names.append(builtin.get(op, str(op)))
    return [names[op.opcodeIndex] for op in model.subgraphs[0].operators]


def lce_runners(args, x_test, y_test, torch_model):
    """Converts the larq models (both forms, batch 100 and 1) and checks LCE's outputs.

    Returns (facts per form, runners, versions)."""
    tf, lq, lce = import_lce()
    tf.get_logger().setLevel("ERROR")
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import numpy as np
    import warnings

    facts, runners = {}, []
    for form, as_conv in (("dense", False), ("conv1x1", True)):
        entry = facts[form] = {}
        for batch in (100, 1):
            model = larq_model(tf, lq, args.hidden, args.depth, batch, as_conv)
            if torch_model is not None:
                copy_torch_weights(model, torch_model, tf)
            log(f"LCE: converting the {form} form, batch {batch}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flatbuffer = lce.convert_keras_model(model)
            if batch == 100:
                entry["ops"] = tflite_ops(flatbuffer)
                entry["flatbuffer_bytes"] = len(flatbuffer)
            for xnn in (False, True):
                suffix = "_xnnpack" if xnn else ""
                interp = Interpreter(flatbuffer, num_threads=args.threads, use_xnnpack=xnn)
                raw = interp.interpreter  # takes a whole batch; Interpreter.predict adds a dim
                x = x_test if batch == 100 else x_test[: args.batch1_images]
                inputs = batches_of(x, batch)
                if batch == 100:
                    # Same answers as the Keras model (and, with copied weights, as PyTorch)?
                    out = np.concatenate([raw.predict([xb])[0] for xb in inputs])
                    out = out.reshape(len(out), -1)
                    if torch_model is not None:
                        entry["test_error" + suffix] = float((out.argmax(1) != y_test[: len(out)]).mean())
                    ref = model(inputs[0], training=False).numpy().reshape(batch, -1)
                    entry["max_abs_diff_vs_keras" + suffix] = float(np.abs(out[:batch] - ref).max())

                def run(raw=raw, inputs=inputs):
                    for xb in inputs:
                        raw.predict([xb])

                runners.append(Runner("lce", form + ("+xnnpack" if xnn else ""), batch,
                                      len(inputs) * batch, run))
        log(f"LCE {form}: ops {summarize_ops(entry['ops'])}")
    versions = {"tensorflow": tf.__version__}
    from importlib import metadata

    for pkg in ("larq", "larq-compute-engine", "tf-keras"):
        versions[pkg] = metadata.version(pkg)
    return facts, runners, versions


def summarize_ops(ops: list[str]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in counts.items())


# --------------------------------------------------------------------------------------------
# lowbit through its command-line program.


def lowbit_program(build: Path) -> Path:
    exe = build / "lowbit"
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise BenchError(
            f"lowbit program not found at {exe}: build it with `bash scripts/build.sh` "
            "(or `cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build "
            "build`), pass --build DIR for another build folder, or use --skip-lowbit")
    return exe


def run_lowbit(cmd: list[str], threads: int) -> str:
    env = dict(os.environ, LOWBIT_NUM_THREADS=str(threads))
    log("running", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BenchError(f"`{' '.join(cmd)}` exited with status {proc.returncode}: "
                         + " | ".join(tail))
    return proc.stdout


def prepare_lowbit(args, workdir: Path):
    """Trains one epoch (the training-time comparison) and exports the model, unless a model
    file is given. Returns (result dict, model path)."""
    exe = str(lowbit_program(args.build))
    recipe = args.recipe
    if not recipe.is_file():
        raise BenchError(f"lowbit recipe {recipe} not found (pass --recipe FILE)")
    result = {}

    train_dir = workdir / "train"
    if not args.skip_train:
        run_lowbit([exe, "train", "--recipe", str(recipe), "--out", str(train_dir),
                    "--epochs", "1", "--threads", str(args.threads)], args.threads)
        metrics = train_dir / "metrics.jsonl"
        try:
            first = json.loads(metrics.read_text().splitlines()[0])
            result["train_seconds_per_epoch"] = float(first["seconds"])
        except (OSError, IndexError, KeyError, ValueError) as e:
            raise BenchError(f"{metrics}: expected JSON lines with a `seconds` key ({e})") from e
        for key in ("train_loss", "valid_error", "test_error"):
            if key in first:
                result[f"train_epoch1_{key}"] = first[key]
        log(f"lowbit epoch 1: {result['train_seconds_per_epoch']:.2f} s")

    model = args.lowbit_model
    if model is None:
        if args.skip_train:
            raise BenchError("--skip-train with lowbit needs --lowbit-model FILE to evaluate")
        model = workdir / "mnist-bnn.lowbit"
        run_lowbit([exe, "--threads", str(args.threads), "export", str(train_dir),
                    "--out", str(model)], args.threads)
    return result, model


def eval_lowbit(args, model: Path) -> dict:
    """One `lowbit eval --json --batch 100` of the test set: images/s at batch 100 and 1 as lowbit
    times them, the model size and the eval report."""
    exe = str(lowbit_program(args.build))
    result = {}
    out = run_lowbit([exe, "--threads", str(args.threads), "eval", str(model), "--data",
                      str(args.data), "--json", "--batch", "100"], args.threads)
    try:
        ev = json.loads(out)
    except ValueError:
        lines = [l for l in out.splitlines() if l.strip().startswith("{")]
        if not lines:
            raise BenchError(f"`lowbit eval --json` printed no JSON object: {out[:200]!r}")
        ev = json.loads(lines[-1])
    for key in ("images_per_second", "model_bytes"):
        if key not in ev:
            raise BenchError(f"`lowbit eval --json` output has no `{key}` key: {sorted(ev)}")
    result["images_per_second_batch100"] = float(ev["images_per_second"])
    if "images_per_second_batch1" in ev:
        result["images_per_second_batch1"] = float(ev["images_per_second_batch1"])
    result["model_bytes"] = int(ev["model_bytes"])
    result["eval"] = ev
    return result


def merge_lowbit_rounds(prepared: dict, rounds: list[dict]) -> dict:
    """lowbit's result: the training figures, the model size and last eval report, and per batch
    size the median images/s over the rounds with every round's value."""
    out = dict(prepared)
    out["model_bytes"] = rounds[-1]["model_bytes"]
    out["eval"] = rounds[-1]["eval"]
    for key in ("images_per_second_batch100", "images_per_second_batch1"):
        vals = [r[key] for r in rounds if key in r]
        if vals:
            out[key] = statistics.median(vals)
            out[key + "_rounds"] = vals
    log(f"lowbit: {out['images_per_second_batch100']:.0f} images/s at batch 100 (median of "
        f"{len(rounds)} rounds), model {out['model_bytes']} bytes")
    return out


# --------------------------------------------------------------------------------------------
# Report.


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def build_report(args, res):
    torch_train = res.get("torch_train")
    floats = res.get("torch_float", {})
    lce = res.get("lce", {})
    lb = res.get("lowbit")

    float_best = max(floats, key=lambda k: floats[k]["images_per_second_batch100"], default=None)
    float_ips = floats[float_best]["images_per_second_batch100"] if float_best else None
    float_ips1 = max((v["images_per_second_batch1"] for v in floats.values()), default=None)

    def lce_best(batch):
        vals = [(v[f"images_per_second_batch{batch}{s}"], f"{name}{s.replace('_', '+')}")
                for name, v in lce.items() for s in ("", "_xnnpack")]
        return max(vals) if vals else (None, None)

    lce_ips, lce_cfg = lce_best(100)
    lce_ips1, lce_cfg1 = lce_best(1)
    torch_s = statistics.median(torch_train["seconds_per_epoch"]) if torch_train else None

    # Inference speed-ups per round: lowbit's images/s in round i over the best configuration of
    # the peer in the same round i; the ratio reported is the median over the rounds.
    round_ratios = {}

    def per_round(key, peer_rounds, batch):
        mine = lb and lb.get(f"images_per_second_batch{batch}_rounds")
        if not mine or not peer_rounds:
            return None
        each = [m / max(p[i] for p in peer_rounds) for i, m in enumerate(mine)]
        round_ratios[key] = each
        return statistics.median(each)

    def float_rounds(batch):
        return [[images / t for t in v[f"seconds_per_pass_batch{batch}"]]
                for v in floats.values() if f"seconds_per_pass_batch{batch}" in v
                for images in [v[f"images_per_pass_batch{batch}"]]]

    def lce_rounds(batch):
        return [[v[f"images_per_pass_batch{batch}"] / t for t in v[f"seconds_per_pass_batch{batch}{s}"]]
                for v in lce.values() for s in ("", "_xnnpack") if f"seconds_per_pass_batch{batch}{s}" in v]

    ratios = {
        "train_seconds_lowbit_over_pytorch": ratio(lb and lb.get("train_seconds_per_epoch"), torch_s),
        "inference_lowbit_over_pytorch_float_batch100": per_round(
            "inference_lowbit_over_pytorch_float_batch100", float_rounds(100), 100),
        "inference_lowbit_over_lce_batch100": per_round("inference_lowbit_over_lce_batch100", lce_rounds(100), 100),
        "inference_lowbit_over_pytorch_float_batch1": per_round(
            "inference_lowbit_over_pytorch_float_batch1", float_rounds(1), 1),
        "inference_lowbit_over_lce_batch1": per_round("inference_lowbit_over_lce_batch1", lce_rounds(1), 1),
        "size_float32_over_lowbit": ratio(res["float32_bytes"], lb and lb["model_bytes"]),
        "inference_lce_over_pytorch_float_batch100": ratio(lce_ips, float_ips),
    }
    targets = {
        "train_seconds_lowbit_over_pytorch": ("<=", TARGET_TRAIN_RATIO),
        "inference_lowbit_over_pytorch_float_batch100": (">=", TARGET_FLOAT_SPEEDUP),
        "inference_lowbit_over_lce_batch100": (">", TARGET_LCE_SPEEDUP),
        "size_float32_over_lowbit": (">=", TARGET_SIZE_RATIO),
    }
    met = {}
    for key, (op, t) in targets.items():
        v = ratios[key]
        met[key] = None if v is None else (v <= t if op == "<=" else v >= t if op == ">=" else v > t)

    return {
        "config": {
            "hidden": args.hidden, "depth": args.depth, "threads": args.threads,
            "train_images": args.train_images, "batch": 100, "repeats": args.repeats,
            "inference_ratios": "per round, median over rounds",
            "batch1_images": args.batch1_images, "torch_epochs": args.torch_epochs,
            "cpu": cpu_name(), "python": platform.python_version(),
            "load_average_1min": res["load_average"],
        },
        "versions": res["versions"],
        "pytorch_train": torch_train and {
            **torch_train, "median_seconds_per_epoch": torch_s,
            "images_per_second": torch_train["images_per_epoch"] / torch_s},
        "pytorch_float": floats,
        "pytorch_float_best": float_best,
        "lce": lce,
        "lce_best_batch100": lce_cfg, "lce_best_batch1": lce_cfg1,
        "lowbit": lb,
        "parameters": res["parameters"], "float32_bytes": res["float32_bytes"],
        "ratios": ratios,
        "ratios_per_round": round_ratios,
        "targets": {k: f"{op} {t:g}" for k, (op, t) in targets.items()},
        "targets_met": met,
        "summary": {
            "train_seconds_per_epoch": {"pytorch": torch_s,
                                        "lowbit": lb and lb.get("train_seconds_per_epoch")},
            "images_per_second_batch100": {"pytorch_float": float_ips, "lce": lce_ips,
                                           "lowbit": lb and lb["images_per_second_batch100"]},
            "images_per_second_batch1": {"pytorch_float": float_ips1, "lce": lce_ips1,
                                         "lowbit": lb and lb.get("images_per_second_batch1")},
        },
    }


def fmt(v, spec=".0f"):
    if v is None:
        width = spec.split(".")[0].rstrip("df")
        return "-".rjust(int(width) if width.isdigit() else 1)
    return format(v, spec)


def print_table(rep):
    c = rep["config"]
    load = c["load_average_1min"]
    print(f"MNIST binary MLP 784-{c['depth']}x{c['hidden']}-10, {c['threads']} thread(s), "
          f"{c['cpu']}; load average {load['start']:.1f} -> {load['end']:.1f}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()))
    tr = rep["pytorch_train"]
    lb = rep["lowbit"] or {}
    print()
    print(f"training, seconds per epoch ({c['train_images']} images, batch 100)")
    if tr:
        print(f"  PyTorch  {fmt(tr['median_seconds_per_epoch'], '8.2f')}   "
              f"({tr['images_per_second']:.0f} images/s; test error after "
              f"{len(tr['seconds_per_epoch'])} epoch(s) {100 * tr['test_error']:.2f} %)")
    else:
        print("  PyTorch  skipped")
    print(f"  lowbit   {fmt(lb.get('train_seconds_per_epoch'), '8.2f')}")
    print()
    print("inference, images per second      batch 100     batch 1")
    for name, v in rep["pytorch_float"].items():
        star = " *" if name == rep["pytorch_float_best"] else ""
        print(f"  PyTorch fp32 ({name:7s})   {fmt(v['images_per_second_batch100'], '12.0f')}"
              f"{fmt(v['images_per_second_batch1'], '12.0f')}{star}")
    for name, v in rep["lce"].items():
        for s, label in (("", ""), ("_xnnpack", "+xnnpack")):
            print(f"  LCE ({(name + label):16s})   {fmt(v['images_per_second_batch100' + s], '12.0f')}"
                  f"{fmt(v['images_per_second_batch1' + s], '12.0f')}")
    print(f"  lowbit                    {fmt(lb.get('images_per_second_batch100'), '12.0f')}"
          f"{fmt(lb.get('images_per_second_batch1'), '12.0f')}")
    if rep["lce"]:
        print()
        for name, v in rep["lce"].items():
            err = v.get("test_error")
            print(f"  LCE {name}: ops {summarize_ops(v['ops'])}; flatbuffer {v['flatbuffer_bytes']} "
                  f"bytes" + ("" if err is None else f"; test error {100 * err:.2f} %"))
    print()
    print(f"model size: float32 {rep['float32_bytes']} bytes ({rep['parameters']} parameters), "
          f"lowbit {fmt(lb.get('model_bytes'), 'd')} bytes")
    print()
    print("ratios")
    labels = {
        "train_seconds_lowbit_over_pytorch": "training time lowbit / PyTorch",
        "inference_lowbit_over_pytorch_float_batch100": "images/s lowbit / PyTorch fp32, batch 100",
        "inference_lowbit_over_lce_batch100": "images/s lowbit / LCE, batch 100",
        "inference_lowbit_over_pytorch_float_batch1": "images/s lowbit / PyTorch fp32, batch 1",
        "inference_lowbit_over_lce_batch1": "images/s lowbit / LCE, batch 1",
        "size_float32_over_lowbit": "model size float32 / lowbit",
        "inference_lce_over_pytorch_float_batch100": "images/s LCE / PyTorch fp32, batch 100",
    }
    for key, label in labels.items():
        v = rep["ratios"][key]
        t = rep["targets"].get(key)
        mark = ""
        if t:
            ok = rep["targets_met"][key]
            mark = f"   target {t}: " + ("n/a" if ok is None else "met" if ok else "NOT met")
        each = rep["ratios_per_round"].get(key)
        span = f"  [{min(each):.2f}, {max(each):.2f}]" if each else ""
        print(f"  {label:44s} {fmt(v, '8.2f')}{span}{mark}")
    print("(inference ratios: median over the rounds of lowbit / the peer's best configuration in the "
          "same round, [smallest, largest])")


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Training and inference speed of lowbit's MNIST binary MLP against "
        "PyTorch and Larq Compute Engine, in one run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    default_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    p.add_argument("--threads", type=int, default=default_threads, help="threads for every engine")
    p.add_argument("--hidden", type=int, default=1024, help="hidden units per layer")
    p.add_argument("--depth", type=int, default=3, help="hidden layers")
    p.add_argument("--data", type=Path, default=REPO / "data" / "mnist",
                   help="folder with MNIST's four IDX .gz files")
    p.add_argument("--train-images", type=int, default=50000,
                   help="training images per epoch (first N of the 60k)")
    p.add_argument("--torch-epochs", type=int, default=1,
                   help="PyTorch epochs timed (median reported)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (PyTorch)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions of each inference pass")
    p.add_argument("--batch1-images", type=int, default=500,
                   help="images per batch-1 inference pass")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--build", type=Path, default=REPO / "build", help="lowbit build folder")
    p.add_argument("--recipe", type=Path, default=REPO / "recipes" / "mnist-bnn-fast.json",
                   help="lowbit training recipe")
    p.add_argument("--lowbit-model", type=Path, default=None,
                   help="evaluate this lowbit model file instead of exporting the one just trained")
    p.add_argument("--skip-lowbit", action="store_true", help="run only the Python peers")
    p.add_argument("--skip-lce", action="store_true", help="leave out Larq Compute Engine")
    p.add_argument("--skip-train", action="store_true", help="leave out the training comparison")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    if args.hidden < 1 or args.depth < 1:
        p.error("--hidden and --depth must be at least 1")
    if args.repeats < 1 or args.batch1_images < 1 or args.torch_epochs < 1:
        p.error("--repeats, --batch1-images and --torch-epochs must be at least 1")
    args.build = args.build if args.build.is_absolute() else Path.cwd() / args.build
    return args


def main(argv=None):
    args = parse_args(argv)
    prepare_environment(args.threads)
    try:
        import numpy as np  # noqa: F401
        import torch
    except ImportError as e:
        raise BenchError(f"cannot import PyTorch ({e}); run `bash scripts/bench-env.sh` and use "
                         ".venv-bench/bin/python") from e
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    # Fail early, before minutes of peer runs, when lowbit cannot be run.
    if not args.skip_lowbit:
        lowbit_program(args.build)
        if (args.hidden, args.depth, args.train_images) != (1024, 3, 50000):
            log("warning: --hidden/--depth/--train-images change only the Python peers; lowbit "
                "trains what its recipe says (pass a matching --recipe and --lowbit-model)")

    load_start = os.getloadavg()[0]
    if load_start > 0.5:
        log(f"warning: load average {load_start:.1f} before the run: other work on this "
            "machine skews the timings")
    x_train, y_train, x_test, y_test = load_mnist(args.data, args.train_images)
    res = {"versions": {"torch": torch.__version__, "numpy": np.__version__,
                        "torch_blas": blas_core_name() or "unknown"}}

    torch_model = None
    if not args.skip_train:
        log(f"PyTorch training: {args.torch_epochs} epoch(s) of {args.train_images} images, "
            f"{args.threads} thread(s)")
        torch_model = torch_bnn(args.hidden, args.depth, args.seed)
        res["torch_train"] = train_torch(torch_model, x_train, y_train, x_test, y_test,
                                         epochs=args.torch_epochs, batch=100, lr=args.lr,
                                         seed=args.seed, warmup_steps=10)

    net = torch_float_net(args.hidden, args.depth, args.seed)
    res["parameters"] = sum(p.numel() for p in net.parameters())
    res["float32_bytes"] = 4 * res["parameters"]
    runners = torch_float_runners(net, x_test, args.batch1_images)
    res["lce"] = {}
    if not args.skip_lce:
        res["lce"], more, lce_versions = lce_runners(args, x_test, y_test, torch_model)
        runners += more
        res["versions"].update(lce_versions)

    with tempfile.TemporaryDirectory(prefix="lowbit-bench-") as tmp:
        lowbit_round = None
        if not args.skip_lowbit:
            prepared, model = prepare_lowbit(args, Path(tmp))
            eval_lowbit(args, model)  # warm-up, and a failure before the timed rounds
            lowbit_round = lambda: eval_lowbit(args, model)  # noqa: E731
        log(f"inference: {len(runners) + (1 if lowbit_round else 0)} configurations, interleaved, "
            f"{args.repeats} rounds")
        lowbit_rounds = time_interleaved(runners, args.repeats, lowbit_round)
        if not args.skip_lowbit:
            res["lowbit"] = merge_lowbit_rounds(prepared, lowbit_rounds)
    res["torch_float"] = {}
    for r in runners:
        if r.engine == "pytorch_float":
            entry, suffix = res["torch_float"].setdefault(r.variant, {}), ""
        else:
            form, _, xnn = r.variant.partition("+")
            entry, suffix = res["lce"][form], ("_xnnpack" if xnn else "")
        entry[f"images_per_second_batch{r.batch}{suffix}"] = r.images_per_second
        entry[f"seconds_per_pass_batch{r.batch}{suffix}"] = r.times  # the raw timings
        entry[f"images_per_pass_batch{r.batch}"] = r.images
        log(f"{r.engine} {r.variant} batch {r.batch}: {r.images_per_second:.0f} images/s")

    res["load_average"] = {"start": load_start, "end": os.getloadavg()[0]}
    rep = build_report(args, res)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print_table(rep)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bnn_mlp_peers: error: {e}", file=sys.stderr)
        sys.exit(1)
