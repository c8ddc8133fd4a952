"""Draw test metric (95% CI) against compile LM calls per system (the DSPy venv's python).

    bench/.venv-dspy/bin/python bench/plot_optimizers.py OUT.png < points.json

points.json: {task: [[system, calls, metric, low, high], ...]}.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

MARKERS = {"lmc": "o", "DSPy": "s"}


def main() -> None:
    points: dict[str, list[list]] = json.load(sys.stdin)
    tasks = sorted(points)
    figure, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        for system, calls, metric, low, high in points[task]:
            axis.errorbar(
                calls,
                metric,
                yerr=[[metric - low], [high - metric]],
                fmt=MARKERS[system.split()[0]],
                capsize=4,
                label=system,
            )
        axis.set_title(task)
        axis.set_xlabel("LM calls spent compiling (0 = zero-shot)")
        axis.set_ylabel("test metric, 95% CI")
        axis.set_ylim(-0.05, 1.05)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(sys.argv[1], dpi=120)


if __name__ == "__main__":
    main()
