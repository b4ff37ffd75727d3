#!/usr/bin/env python3
"""Trains a lowbit binary-MLP recipe in PyTorch, epoch by epoch, to cross-check lowbit's curve.

An independent implementation of the same training algorithm (Hubara et al., BNN; the Theano
reference code's choices, ../shared/reference/qnn.md sections 1-2 and 7):

  * binary dense: x @ sign(W), sign(0) = +1, latent W ~ U(-1, 1), clipped to [-1, 1] after
    every step; Adam's step for W multiplied by 1/sqrt(1.5 / (fan_in + fan_out)) (Glorot);
  * sign of activations: straight-through estimator cancelled where |x| > 1 (hard tanh);
  * batch norm with batch statistics in training, running averages (momentum 0.1) in evaluation;
  * inverted dropout; squared hinge loss against +-1 one-hot targets (or cross-entropy);
  * Adam, learning rate decayed exponentially once per epoch from lr_start to lr_end over the
    recipe's epochs; the last valid_size training images are the validation set.

It reads the recipe lowbit trains from, so the two runs use the same network and
hyperparameters, and prints one line per epoch. With --compare it prints lowbit's metrics.jsonl
beside it. Initial weights and shuffling differ (different generators), so the curves agree in
trend and level, not digit for digit.

    .venv-bench/bin/python bench/bnn_curve_torch.py --recipe recipes/mnist-bnn.json \\
        --hidden 1024 --stop-after 8 --compare runs/probe/metrics.jsonl

--hidden changes the width of every hidden binary layer; with --write-recipe FILE the script
writes the recipe it trains (that width included) and exits, for lowbit to train the same:

    .venv-bench/bin/python bench/bnn_curve_torch.py --hidden 1024 --write-recipe /some/dir/r.json
    build/lowbit train --recipe /some/dir/r.json --out runs/probe --stop-after 8
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bnn_mlp_peers as peers  # noqa: E402  (IDX reader, thread set-up)

REPO = Path(__file__).resolve().parent.parent
SUPPORTED = {"dropout", "binary_dense", "batch_norm", "hardtanh", "sign"}


class CurveError(Exception):
    """A problem the user can fix; printed as one line."""


def read_recipe(path: Path, hidden: int | None) -> dict:
    try:
        recipe = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CurveError(f"{path}: cannot read the recipe ({e})") from e
    layers = recipe.get("model", {}).get("layers", [])
    for i, layer in enumerate(layers):
        kind = layer.get("type")
        if kind not in SUPPORTED:
            raise CurveError(f"{path}: layer {i} has type {kind!r}; this cross-check builds only "
                             f"{', '.join(sorted(SUPPORTED))}")
        if kind == "sign" and layer.get("stochastic"):
            raise CurveError(f"{path}: layer {i}: stochastic sign is not supported here")
        if kind == "batch_norm" and layer.get("shift"):
            raise CurveError(f"{path}: layer {i}: shift-based batch norm is not supported here")
    dense = [l for l in layers if l["type"] == "binary_dense"]
    if hidden is not None:
        for layer in dense[:-1]:
            layer["units"] = hidden
    opt = recipe.get("optimizer", {})
    if opt.get("type", "adam") != "adam" or opt.get("schedule", "exponential") != "exponential":
        raise CurveError(f"{path}: only Adam with an exponential schedule is supported here")
    if recipe.get("data", {}).get("dataset", "mnist") != "mnist":
        raise CurveError(f"{path}: only MNIST recipes are supported here")
    return recipe


def build(recipe: dict, seed: int):
    import torch
    from torch import nn

    SignSTE, BinaryDense = peers.torch_binary_modules()

    class Sign(nn.Module):
        def forward(self, x):
            return SignSTE.apply(x)

    torch.manual_seed(seed)
    width = 784
    mods = []
    for layer in recipe["model"]["layers"]:
        kind = layer["type"]
        if kind == "dropout":
            mods.append(nn.Dropout(layer.get("p", 0.5)))
        elif kind == "binary_dense":
            mods.append(BinaryDense(width, layer["units"]))
            width = layer["units"]
        elif kind == "batch_norm":
            mods.append(nn.BatchNorm1d(width, eps=layer.get("eps", 1e-4), momentum=layer.get("momentum", 0.1)))
        elif kind == "hardtanh":
            mods.append(nn.Hardtanh())
        elif kind == "sign":
            mods.append(Sign())
    return nn.Sequential(*mods)


def errors(model, x, y, batch=1000) -> float:
    import torch

    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(torch.from_numpy(x[i:i + batch])).argmax(1) for i in range(0, len(x), batch)])
    model.train()
    return float((pred.numpy() != y).mean())


def read_lowbit_metrics(path: Path) -> dict[int, dict]:
    rows = {}
    try:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    rows[int(row["epoch"])] = row
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise CurveError(f"{path}:{n}: not a metrics line ({e})") from e
    except OSError as e:
        raise CurveError(f"{path}: cannot read ({e})") from e
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipe", type=Path, default=REPO / "recipes" / "mnist-bnn.json")
    p.add_argument("--data", type=Path, default=REPO / "data" / "mnist",
                   help="folder with MNIST's four IDX .gz files")
    p.add_argument("--hidden", type=int, default=None, help="width of every hidden binary layer")
    p.add_argument("--stop-after", type=int, default=5,
                   help="epochs to train (the schedule still spans the recipe's epochs)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--compare", type=Path, default=None, help="lowbit metrics.jsonl to print beside")
    p.add_argument("--write-recipe", type=Path, default=None,
                   help="write the recipe as trained here (after --hidden) to this file and exit")
    args = p.parse_args(argv)
    if args.stop_after < 1 or args.threads < 1 or (args.hidden is not None and args.hidden < 1):
        p.error("--stop-after, --threads and --hidden must be at least 1")

    try:
        recipe = read_recipe(args.recipe, args.hidden)
        if args.write_recipe:
            if args.hidden is not None:
                recipe["name"] = f"{recipe.get('name', 'recipe')}-h{args.hidden}"
            data = recipe.setdefault("data", {})
            data["path"] = str(args.data.resolve())
            try:
                args.write_recipe.write_text(json.dumps(recipe, indent=2) + "\n")
            except OSError as e:
                raise CurveError(f"{args.write_recipe}: cannot write ({e})") from e
            print(f"wrote {args.write_recipe}")
            return 0
        lowbit_rows = read_lowbit_metrics(args.compare) if args.compare else {}
        peers.prepare_environment(args.threads)
        try:
            import numpy as np
            import torch
        except ImportError as e:
            raise CurveError(f"cannot import PyTorch ({e}); run `bash scripts/bench-env.sh` and use "
                             ".venv-bench/bin/python") from e
        torch.set_num_threads(args.threads)

        valid = int(recipe.get("data", {}).get("valid_size", 10000))
        x_all, y_all, x_test, y_test = peers.load_mnist(args.data, 60000)
        x_train, y_train = x_all[:60000 - valid], y_all[:60000 - valid]
        x_valid, y_valid = x_all[60000 - valid:], y_all[60000 - valid:]
    except peers.BenchError as e:
        raise CurveError(str(e)) from e

    model = build(recipe, args.seed)
    opt_cfg = recipe.get("optimizer", {})
    lr_start, lr_end = float(opt_cfg.get("lr_start", 3e-3)), float(opt_cfg.get("lr_end", 3e-7))
    epochs = int(recipe.get("training", {}).get("epochs", 1000))
    batch = int(recipe.get("training", {}).get("batch_size", 100))
    decay = (lr_end / lr_start) ** (1.0 / epochs)
    binary = [m for m in model if hasattr(m, "lr_scale")]
    groups = [{"params": [m.weight], "lr_scale": m.lr_scale} for m in binary]
    others = [q for m in model if not hasattr(m, "lr_scale") for q in m.parameters()]
    groups.append({"params": others, "lr_scale": 1.0})
    opt = torch.optim.Adam(groups, lr=lr_start, betas=(0.9, 0.999), eps=1e-8)
    hinge = recipe.get("loss", "squared_hinge") == "squared_hinge"

    x = torch.from_numpy(x_train)
    labels = torch.from_numpy(y_train)
    targets = -torch.ones(len(y_train), 10)
    targets[torch.arange(len(y_train)), labels] = 1.0
    rng = np.random.default_rng(args.seed)
    steps = len(x) // batch

    head = f"{'epoch':>5} {'lr':>9}  {'torch loss':>10} {'train':>7} {'valid':>7} {'test':>7} {'s':>6}"
    if lowbit_rows:
        head += f"  | {'lowbit loss':>11} {'train':>7} {'valid':>7} {'test':>7}"
    print(f"{args.recipe.name}: {sum(q.numel() for q in model.parameters())} parameters, "
          f"{len(x)}/{len(x_valid)}/{len(x_test)} images, batch {batch}, {args.threads} threads", flush=True)
    print(head, flush=True)
    lr = lr_start
    for epoch in range(1, args.stop_after + 1):
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        order = torch.from_numpy(rng.permutation(len(x)))
        loss_sum, wrong, t0 = 0.0, 0, time.perf_counter()
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            out = model(x.index_select(0, idx))
            if hinge:
                loss = torch.clamp(1.0 - targets.index_select(0, idx) * out, min=0.0).pow(2).mean()
            else:
                loss = torch.nn.functional.cross_entropy(out, labels.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for m in binary:
                    m.weight.clamp_(-1.0, 1.0)
            loss_sum += loss.item()
            wrong += int((out.argmax(1) != labels.index_select(0, idx)).sum())
        seconds = time.perf_counter() - t0
        line = (f"{epoch:>5} {lr:>9.3g}  {loss_sum / steps:>10.4f} {wrong / (steps * batch):>7.2%} "
                f"{errors(model, x_valid, y_valid):>7.2%} {errors(model, x_test, y_test):>7.2%} {seconds:>6.1f}")
        row = lowbit_rows.get(epoch)
        if row:
            line += (f"  | {row['train_loss']:>11.4f} {row.get('train_error', float('nan')):>7.2%} "
                     f"{row['valid_error']:>7.2%} {row['test_error']:>7.2%}")
        print(line, flush=True)
        lr *= decay
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CurveError as e:
        print(f"bnn_curve_torch: {e}", file=sys.stderr)
        sys.exit(1)
