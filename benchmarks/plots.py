"""One latency CDF (PNG) per scenario that has per-piece or per-request samples."""

from __future__ import annotations

from pathlib import Path

from benchmarks.summary import ScenarioSummary


def latency_cdfs(summaries: list[ScenarioSummary], directory: Path) -> list[Path]:
    """Write ``cdf-<scenario>.png`` files; returns their paths (none if matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written: list[Path] = []
    for summary in summaries:
        rows = [row for row in summary.rows if row.sketches]
        if not rows:
            continue
        figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
        for row in rows:
            # Repetitions have equal-sized sketches, so pooling them weighs each rep equally.
            values = sorted(v for sketch in row.sketches for v in sketch if v > 0)
            if not values:
                continue
            fractions = [(i + 0.5) / len(values) for i in range(len(values))]
            style = "--" if row.client.floor else "-"
            axes.plot(values, fractions, style, label=row.client.label, linewidth=1.4)
        scenario = summary.scenario
        axes.set_xscale("log")
        axes.set_xlabel("latency, µs (log scale)")
        axes.set_ylabel("fraction of samples ≤ x")
        axes.set_title(f"{scenario.key}: {scenario.title}", fontsize=10)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7, loc="lower right")
        figure.tight_layout()
        path = directory / f"cdf-{scenario.key}.png"
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written
