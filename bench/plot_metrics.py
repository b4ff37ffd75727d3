#!/usr/bin/env python3
"""Draws a training curve from lowbit's metrics.jsonl, or prints it as a Markdown table.

    .venv-bench/bin/python bench/plot_metrics.py RUN/metrics.jsonl curve.png [--title TEXT]
    python3 bench/plot_metrics.py RUN/metrics.jsonl --table 20

(any Python 3 with matplotlib will do for the picture, e.g. Debian's /usr/bin/python3 with
python3-matplotlib; the table needs nothing beyond the standard library).

metrics.jsonl holds one JSON object per epoch with the keys `epoch`, `train_loss`,
`valid_error`, `test_error` (fractions, not percent) and `seconds`; language models write
`valid_perplexity` and `test_perplexity` (and `train_perplexity`) instead of the errors.
Missing or null values are left out. Left panel: training loss; right panel: validation and
test error in percent (or perplexity), with the epoch of best validation marked (the papers
report the test value at that epoch). A panel whose values span more than 5x gets a log scale.

`--table N` prints epochs 1, 2, 5, every N-th, the best and the last as a Markdown table
(epoch, learning rate, train loss, train error or perplexity, validation, test, seconds).
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


def metric_kind(rows: list[dict]) -> tuple[str, str, float, str]:
    """(valid key, test key, scale, unit) of the run: errors in percent, or perplexities."""
    if any(isinstance(r.get("valid_perplexity"), (int, float)) for r in rows):
        return "valid_perplexity", "test_perplexity", 1.0, ""
    return "valid_error", "test_error", 100.0, " %"


def best_row(rows: list[dict]) -> dict | None:
    vkey = metric_kind(rows)[0]
    scored = [r for r in rows if isinstance(r.get(vkey), (int, float))]
    return min(scored, key=lambda r: (r[vkey], r["epoch"])) if scored else None


def table(rows: list[dict], every: int) -> str:
    vkey, tkey, scale, unit = metric_kind(rows)
    train_key, train_scale = ("train_perplexity", 1.0) if unit == "" else ("train_error", 100.0)
    best = best_row(rows)
    last = rows[-1]["epoch"]
    keep = {1, 2, 5, last} | {e for e in range(every, last + 1, every)} if every > 0 else {1, last}
    if best:
        keep.add(best["epoch"])

    def cell(row, key, sc, fmt):
        v = row.get(key)
        return (fmt.format(v * sc) + (unit if key != "train_loss" and key != "lr" else "")) \
            if isinstance(v, (int, float)) else ""

    word = "perplexity" if unit == "" else "error"
    out = [f"| epoch | lr | train loss | train {word} | valid {word} | test {word} | seconds |",
           "|---|---|---|---|---|---|---|"]
    num = "{:.2f}"
    for row in rows:
        if row["epoch"] not in keep:
            continue
        e = f"{row['epoch']} (best)" if best is not None and row is best else str(row["epoch"])
        lr = f"{row['lr']:.3g}" if isinstance(row.get("lr"), (int, float)) else ""
        loss = f"{row['train_loss']:.4f}" if isinstance(row.get("train_loss"), (int, float)) else ""
        secs = f"{row['seconds']:.1f}" if isinstance(row.get("seconds"), (int, float)) else ""
        out.append(f"| {e} | {lr} | {loss} | {cell(row, train_key, train_scale, num)} | "
                   f"{cell(row, vkey, scale, num)} | {cell(row, tkey, scale, num)} | {secs} |")
    return "\n".join(out)


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

    vkey, tkey, scale, unit = metric_kind(rows)
    word = "perplexity" if unit == "" else "error"
    for key, color, label in ((vkey, "tab:orange", "validation"), (tkey, "tab:green", "test")):
        x, y = series(rows, key, scale)
        if x:
            ax_err.plot(x, y, color=color, marker="o" if len(x) <= 30 else None, ms=3,
                        label=f"{label} (last {y[-1]:.2f}{unit})")
    b = best_row(rows)
    if b:
        note = f"best validation {scale * b[vkey]:.2f}{unit} at epoch {b['epoch']}"
        if isinstance(b.get(tkey), (int, float)):
            note += f"\ntest {word} there {scale * b[tkey]:.2f}{unit}"
        ax_err.axvline(b["epoch"], color="grey", ls="--", lw=1)
        ax_err.text(0.98, 0.78, note, transform=ax_err.transAxes, ha="right", va="top",
                    fontsize=9, bbox=dict(boxstyle="round", fc="white", ec="0.8"))
    readable_log_scale(ax_err, [v for line in ax_err.lines for v in line.get_ydata()])
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel("error (%)" if unit else "perplexity")
    ax_err.set_title("classification error" if unit else "perplexity")
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
    p.add_argument("out", type=Path, nargs="?", help="picture to write (.png, .svg or .pdf)")
    p.add_argument("--title", help="heading of the picture (default: 'training curve')")
    p.add_argument("--table", type=int, metavar="N",
                   help="print a Markdown table of epochs 1, 2, 5, every N-th, the best and the last")
    args = p.parse_args(argv)
    if args.out is None and args.table is None:
        p.error("give a picture to write, --table N, or both")
    rows = read_metrics(args.metrics)
    if args.table is not None:
        if args.table < 0:
            p.error("--table needs N >= 0")
        print(table(rows, args.table))
    if args.out is None:
        return 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("plot_metrics: error: matplotlib is missing: `apt-get install "
                         "python3-matplotlib` or run `bash scripts/bench-env.sh`")
    plot(rows, args.out, args.title)
    print(f"plot_metrics: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
