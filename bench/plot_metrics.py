#!/usr/bin/env python3
"""Draws a training curve from lowbit's metrics.jsonl.

    .venv-bench/bin/python bench/plot_metrics.py RUN/metrics.jsonl curve.png [--title TEXT]

(any Python 3 with matplotlib will do, e.g. Debian's /usr/bin/python3 with python3-matplotlib).

metrics.jsonl holds one JSON object per epoch with the keys `epoch`, `train_loss`,
`valid_error`, `test_error` (fractions, not percent) and `seconds`; missing or null values are
left out of the picture. Left panel: training loss; right panel: validation and test error in
percent, with the epoch of best validation error marked (the paper reports the test error at
that epoch). A panel whose values span more than 5x gets a log scale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_metrics(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise SystemExit(f"plot_metrics: error: cannot read {path}: {e.strerror}")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise SystemExit(f"plot_metrics: error: {path}:{n}: not a JSON object ({e})")
        if not isinstance(row, dict):
            raise SystemExit(f"plot_metrics: error: {path}:{n}: expected a JSON object")
        rows.append(row)
    if not rows:
        raise SystemExit(f"plot_metrics: error: {path} has no epochs")
    for i, row in enumerate(rows, 1):
        row.setdefault("epoch", i)
    return rows


def series(rows: list[dict], key: str, scale: float = 1.0):
    xs, ys = [], []
    for row in rows:
        v = row.get(key)
        if isinstance(v, (int, float)):
            xs.append(row["epoch"])
            ys.append(v * scale)
    return xs, ys


def readable_log_scale(ax, values) -> None:
    """A log scale when the values span more than 5x (early epochs dwarf the later ones),
    with plain numbers on the ticks instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    values = [v for v in values if v > 0]
    if not values or max(values) / min(values) <= 5:
        return
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def plot(rows: list[dict], out: Path, title: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)

    x, y = series(rows, "train_loss")
    ax_loss.plot(x, y, color="tab:blue", marker="o" if len(x) <= 30 else None, ms=3,
                 label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("training loss")
    readable_log_scale(ax_loss, y)
    ax_loss.grid(True, which="both", alpha=0.3)

    for key, color, label in (("valid_error", "tab:orange", "validation"),
                              ("test_error", "tab:green", "test")):
        x, y = series(rows, key, 100.0)
        if x:
            ax_err.plot(x, y, color=color, marker="o" if len(x) <= 30 else None, ms=3,
                        label=f"{label} (last {y[-1]:.2f} %)")
    best = [r for r in rows if isinstance(r.get("valid_error"), (int, float))]
    if best:
        b = min(best, key=lambda r: r["valid_error"])
        note = f"best validation {100 * b['valid_error']:.2f} % at epoch {b['epoch']}"
        if isinstance(b.get("test_error"), (int, float)):
            note += f"\ntest error there {100 * b['test_error']:.2f} %"
        ax_err.axvline(b["epoch"], color="grey", ls="--", lw=1)
        ax_err.text(0.98, 0.78, note, transform=ax_err.transAxes, ha="right", va="top",
                    fontsize=9, bbox=dict(boxstyle="round", fc="white", ec="0.8"))
    readable_log_scale(ax_err, [v for line in ax_err.lines for v in line.get_ydata()])
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel("error (%)")
    ax_err.set_title("classification error")
    ax_err.grid(True, which="both", alpha=0.3)
    if ax_err.lines:
        ax_err.legend(loc="upper right")

    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_err):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    secs = [r["seconds"] for r in rows if isinstance(r.get("seconds"), (int, float))]
    heading = title or "training curve"
    if secs:
        heading += f"  ({len(rows)} epochs, {sum(secs):.0f} s in all, {secs[-1]:.1f} s last epoch)"
    fig.suptitle(heading)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Plot lowbit's metrics.jsonl as a training curve.")
    p.add_argument("metrics", type=Path, help="metrics.jsonl written by `lowbit train`")
    p.add_argument("out", type=Path, help="picture to write (.png, .svg or .pdf)")
    p.add_argument("--title", help="heading of the picture (default: 'training curve')")
    args = p.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("plot_metrics: error: matplotlib is missing: `apt-get install "
                         "python3-matplotlib` or run `bash scripts/bench-env.sh`")
    plot(read_metrics(args.metrics), args.out, args.title)
    print(f"plot_metrics: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
