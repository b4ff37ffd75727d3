#!/usr/bin/env python3
"""Markdown tables of bAbI runs from the results.json that `lowbit train --task ... --runs N` writes.

    python3 scripts/babi_runs_table.py runs/q10/conv-binary/results.json
        one configuration: per task the runs, the mean, minimum and maximum test error, and the
        test error of the run with the lowest validation error (the choice that does not look
        at the test set)
    python3 scripts/babi_runs_table.py --name conv=A.json --name qmann=B.json
        several configurations side by side: per task "mean (best-validation run)", the means
        over the tasks, and the ratio of each configuration's means to the first one's
    python3 scripts/babi_runs_table.py --select --name adjacent=A.json --name layerwise=B.json
        adds a column that chooses, per task, the run with the lowest validation error among the
        runs of all the configurations given (ties: the earlier configuration, then the earlier
        run), with its test error, configuration and run: model selection per task that never
        looks at the test set

Several results files of one configuration (tasks split over processes) are joined with commas:
--name float=runs/pe10/a/results.json,runs/pe10/b/results.json. Only tasks present in every
configuration are compared; a task whose runs are not all finished is left out and named.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load_tasks(paths: list[str]) -> dict[int, dict]:
    """Task number -> the task's entry (runs, mean_test_error, best_test_error, ...)."""
    tasks: dict[int, dict] = {}
    for p in paths:
        try:
            data = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as e:
            sys.exit(f"babi_runs_table.py: {p}: {e}")
        if not isinstance(data, dict) or "tasks" not in data:
            sys.exit(f"babi_runs_table.py: {p}: not a bAbI results.json (no 'tasks')")
        for t in data["tasks"]:
            if "mean_test_error" not in t or "best_test_error" not in t:
                print(f"babi_runs_table.py: {p}: task {t.get('task')} is not finished, left out", file=sys.stderr)
                continue
            tasks[int(t["task"])] = t
    return tasks


def one_table(tasks: dict[int, dict]) -> str:
    lines = ["| task | runs | mean test error % | min | max | run with the best validation error: test % (run, valid %) |",
             "|---|---|---|---|---|---|"]
    means, mins, maxs, bests = [], [], [], []
    for k in sorted(tasks):
        t = tasks[k]
        errs = [100 * r["test_error"] for r in t["runs"]]
        m, b = 100 * t["mean_test_error"], 100 * t["best_test_error"]
        means.append(m), mins.append(min(errs)), maxs.append(max(errs)), bests.append(b)
        lines.append(f"| {k} | {len(errs)} | {m:.1f} | {min(errs):.1f} | {max(errs):.1f} | "
                     f"{b:.1f} (run {t['best_run']}, valid {100 * t['best_valid_error']:.1f}) |")
    n = len(means)
    if n:
        lines.append(f"| **mean** | | **{sum(means) / n:.2f}** | {sum(mins) / n:.2f} | {sum(maxs) / n:.2f} | "
                     f"**{sum(bests) / n:.2f}** |")
    return "\n".join(lines)


def select_across(configs: list[tuple[str, dict[int, dict]]], task: int) -> tuple[float, str, int, float]:
    """Test error %, configuration, run and validation error % of the run with the lowest validation error."""
    best = None
    for name, t in configs:
        for r in t[task]["runs"]:
            if best is None or r["valid_error"] < best[3]:
                best = (100 * r["test_error"], name, r["run"], r["valid_error"])
    assert best is not None
    return best[0], best[1], best[2], 100 * best[3]


def compare_table(configs: list[tuple[str, dict[int, dict]]], select: bool = False) -> str:
    common = sorted(set.intersection(*(set(t) for _, t in configs)))
    for name, t in configs:
        missing = sorted(set(t) - set(common))
        if missing:
            print(f"babi_runs_table.py: {name}: tasks {missing} are not in every configuration, left out",
                  file=sys.stderr)
    head = "| task | " + " | ".join(name for name, _ in configs) + " |"
    if select:
        head += " lowest validation error over all runs: test % (configuration, run, valid %) |"
    lines = [head, "|---|" + "---|" * (len(configs) + (1 if select else 0))]
    sums = [[0.0, 0.0] for _ in configs]
    selected = 0.0
    for k in common:
        cells = []
        for i, (_, t) in enumerate(configs):
            m, b = 100 * t[k]["mean_test_error"], 100 * t[k]["best_test_error"]
            sums[i][0] += m
            sums[i][1] += b
            cells.append(f"{m:.1f} ({b:.1f})")
        if select:
            test, name, run, valid = select_across(configs, k)
            selected += test
            cells.append(f"{test:.1f} ({name}, run {run}, valid {valid:.1f})")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    n = max(len(common), 1)
    lines.append("| **mean** | " + " | ".join(f"**{s[0] / n:.2f}** ({s[1] / n:.2f})" for s in sums) +
                 (f" | **{selected / n:.2f}**" if select else "") + " |")
    if len(configs) > 1 and sums[0][0] > 0 and sums[0][1] > 0:
        lines.append(f"| ratio to {configs[0][0]} | " + " | ".join(
            f"{s[0] / sums[0][0]:.3f}× ({s[1] / sums[0][1]:.3f}×)" for s in sums) + (" | |" if select else " |"))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="*", help="results.json files of one configuration")
    p.add_argument("--name", action="append", default=[], metavar="NAME=FILE[,FILE...]",
                   help="a configuration to compare (repeat); the first is the reference of the ratios")
    p.add_argument("--select", action="store_true",
                   help="with --name: also choose per task the run with the lowest validation error over all")
    a = p.parse_args()
    if a.name and a.results:
        p.error("give either results files of one configuration or --name configurations, not both")
    if a.select and not a.name:
        p.error("--select needs --name configurations")
    if a.name:
        configs = []
        for spec in a.name:
            if "=" not in spec:
                p.error(f"--name {spec}: expected NAME=FILE[,FILE...]")
            name, files = spec.split("=", 1)
            configs.append((name, load_tasks(files.split(","))))
        print(compare_table(configs, a.select))
    elif a.results:
        print(one_table(load_tasks(a.results)))
    else:
        p.error("no results files")


if __name__ == "__main__":
    main()
