"""Draw dev metric against compile LM calls for lmc and DSPy (run with the DSPy venv's python).

    bench/.venv-dspy/bin/python bench/plot.py OUT.png < points.json

points.json: {side: {task: [[calls, metric], ...]}}.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    points: dict[str, dict[str, list[list[float]]]] = json.load(sys.stdin)
    tasks = sorted({task for side in points.values() for task in side})
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        for side, style in (("lmc", "o-"), ("DSPy", "s--")):
            series = points.get(side, {}).get(task, [])
            if series:
                xs, ys = zip(*series, strict=True)
                axis.plot(xs, ys, style, label=side)
        axis.set_title(task)
        axis.set_xlabel("LM calls spent compiling (0 = zero-shot)")
        axis.set_ylabel("dev metric")
        axis.set_ylim(-0.05, 1.05)
        axis.legend()
    figure.tight_layout()
    figure.savefig(sys.argv[1], dpi=120)


if __name__ == "__main__":
    main()
