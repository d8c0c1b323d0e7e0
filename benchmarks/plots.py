"""Plots: one latency CDF (PNG) per scenario that has per-piece or per-request samples, and
p99 against the number of concurrent streams for every client."""

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
        if not rows or summary.scenario.measure == "import":
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


def p99_vs_streams(summaries: list[ScenarioSummary], directory: Path) -> list[Path]:
    """``p99_vs_streams.png``: piece latency p99 (all pieces, and the steady state) against the
    number of concurrent streams, one line per client that ran every rung; none unless two or
    more rungs ran."""
    rungs = sorted(
        (s for s in summaries if s.scenario.measure == "concurrency"),
        key=lambda s: s.scenario.streams,
    )
    if len(rungs) < 2:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return []
    # The clients of the biggest rung ran the whole ladder (the byte variants stop at 1000).
    clients = [row.client for row in rungs[-1].rows]
    colours = plt.get_cmap("tab10")
    figure, panels = plt.subplots(1, 2, figsize=(12, 5.8), dpi=110, sharey=True)
    for axes, metric, title in (
        (panels[0], "p99_ms", "p99, every piece but each stream's first"),
        (panels[1], "steady_p99_ms", "p99, steady state (pieces sent after all streams started)"),
    ):
        for index, client in enumerate(clients):
            points = [
                (s.scenario.streams, value)
                for s in rungs
                for value in [s.median(client.key, metric)]
                if value == value and value > 0  # not nan
            ]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            axes.plot(
                xs,
                ys,
                "--" if client.floor else "-",
                marker="osD^vP*X"[index % 8],
                color=colours(index % 10),
                label=client.label,
                linewidth=1.5,
                markersize=5,
            )
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("concurrent streams (64 B every 100 ms each)")
        axes.set_title(title, fontsize=10)
        axes.grid(True, which="both", alpha=0.3)
        axes.set_xticks([s.scenario.streams for s in rungs])
        axes.set_xticklabels([str(s.scenario.streams) for s in rungs])
        axes.xaxis.set_minor_formatter(NullFormatter())
    panels[0].set_ylabel("piece latency p99, ms (log scale; median over repetitions)")
    panels[0].legend(fontsize=8, loc="upper left")
    figure.suptitle(
        "Many streams on one event loop: where the latency cliff is (lower is better)", fontsize=11
    )
    figure.tight_layout()
    path = directory / "p99_vs_streams.png"
    figure.savefig(path)
    plt.close(figure)
    return [path]
