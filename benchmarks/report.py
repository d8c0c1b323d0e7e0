"""Rendering: the results table (stdout and markdown) and the JSON file."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from benchmarks.summary import COLUMNS, Cell, Column, Row, ScenarioSummary
from benchmarks.targets import TargetCheck
from benchmarks.worker import Measurement

LEGEND = (
    "Cells: median over repetitions, ±spread ((max-min)/median), and the ratio to the floor of "
    "the same kind (text clients to the text floor, byte clients to the byte floor, chat clients "
    "to the chat floor, imports to `import anyio, h11, ssl`). MB/s and requests/s: higher is "
    "better; 'reused' and 'TLS resumed' are shares of the measured requests; lower is better "
    "everywhere else. '-': not defined in that run (e.g. no steady state: a stream ended before "
    "the last one started)."
)


def number(value: float) -> str:
    if math.isnan(value):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(cell: Cell | None, column: Column) -> str:
    if cell is None or math.isnan(cell.median):
        return "-"
    if not column.ratio:
        return f"{cell.median * 100:.0f}%"
    text = number(cell.median)
    if not math.isnan(cell.spread):
        text += f" ±{cell.spread * 100:.0f}%"
    if not math.isnan(cell.ratio):
        text += f" {cell.ratio:.2f}x"
    return text


def _row(row: Row, columns: Sequence[Column], mark: str) -> list[str]:
    label = row.client.label + mark
    if row.status != "ok":
        status = row.status.upper()
        return [label, f"{status}: {row.error}" if row.error else status] + [""] * (
            len(columns) - 1
        )
    cells = [_cell(row.cells.get(column.metric), column) for column in columns]
    label += f" ({row.error})" if row.error else ""
    return [label, *cells]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def scenario_block(summary: ScenarioSummary) -> str:
    scenario = summary.scenario
    columns = COLUMNS[scenario.measure]
    header = ["client", *(c.header for c in columns)]
    notes = list(dict.fromkeys(row.note for row in summary.rows if row.note))
    marks = {note: " " + "*" * (i + 1) for i, note in enumerate(notes)}
    rows = [_row(row, columns, marks.get(row.note, "")) for row in summary.rows]
    share = summary.server_cpu_share
    server = f"server CPU share {share * 100:.1f}%" if share is not None else "server CPU n/a"
    reps = summary.reps
    footnotes = "".join(f"\n\n{marks[note].strip()} {note}" for note in notes)
    return (
        f"### {scenario.key}: {scenario.title}\n\n"
        f"{reps} repetition{'s' if reps != 1 else ''}; {server}\n\n"
        + markdown_table(header, rows)
        + footnotes
    )


def targets_block(checks: Sequence[TargetCheck]) -> str:
    if not checks:
        return ""
    header = ["issue", "target", "client", "measured", "goal", "met"]
    rows = [
        [
            c.issue,
            c.target,
            c.client,
            c.measured,
            c.goal,
            {True: "yes", False: "NO", None: "n/a"}[c.met],
        ]
        for c in checks
    ]
    met = sum(1 for c in checks if c.met)
    missed = sum(1 for c in checks if c.met is False)
    return (
        "### Targets (goals from issues 3, 7 and 11; never test assertions)\n\n"
        f"{met} met, {missed} missed, {len(checks) - met - missed} not measurable in this run\n\n"
        + markdown_table(header, rows)
    )


# The headline figures: (scenario, metric, label), compared across runtimes and with the peers.
HEADLINES = (
    ("latency-plain", "p50_us", "per-piece latency p50 µs"),
    ("latency-plain", "cpu_us_per_piece", "CPU µs per paced piece"),
    ("ttfb-plain", "p50_us", "new connection: first piece p50 µs"),
    ("ttfb-plain", "cpu_us_per_request", "CPU µs per new connection"),
    ("sequential-plain", "requests_s", "sequential requests/s over one client, plain"),
    ("sequential-tls", "requests_s", "sequential requests/s over one client, TLS"),
    ("sequential-plain", "p50_us", "reused connection: TTFB p50 µs"),
    ("reconnect-tls", "p50_us", "reconnect after idle, TLS: TTFB p50 µs"),
    ("chat-sse", "p50_us", "chat token latency p50 µs"),
    ("chat-sse", "p99_us", "chat token latency p99 µs"),
    ("chat-sse", "cpu_us_per_token", "chat CPU µs per token"),
    ("throughput-utf8", "mb_s", "UTF-8 text MB/s"),
    ("concurrency-1000", "cpu_s", "1000 streams: client CPU s"),
    ("concurrency-1000", "p99_ms", "1000 streams: p99 ms"),
    ("concurrency-1000", "steady_p99_ms", "1000 streams: steady-state p99 ms"),
    ("concurrency-2000", "p99_ms", "2000 streams: p99 ms"),
    ("concurrency-5000", "p99_ms", "5000 streams: p99 ms"),
    ("import", "p50_ms", "import ms"),
)
_RUNTIMES = ("asyncio", "uvloop", "trio")


def _keys(scenario: ScenarioSummary) -> tuple[list[str], str, str]:
    """acytoo_raw's client keys per runtime, aiohttp's and the floor's, for this scenario."""
    family = scenario.rows[0].client.family if scenario.rows else "stream"
    if family == "chat":
        return [f"chat-acytoo-{r}" for r in _RUNTIMES], "chat-aiohttp", "chat-floor"
    if family == "import":
        return ["import-acytoo"], "import-aiohttp", "import-floor"
    return [f"acytoo-text-{r}" for r in _RUNTIMES], "aiohttp-text", "floor-text"


def headlines_block(summaries: Sequence[ScenarioSummary]) -> str:
    by_key = {s.scenario.key: s for s in summaries}
    header = ["figure", "asyncio", "uvloop", "trio", "aiohttp", "floor", "÷ aiohttp", "÷ floor"]
    rows = []
    for key, metric, label in HEADLINES:
        summary = by_key.get(key)
        if summary is None:
            continue
        ours, aiohttp, floor = _keys(summary)
        values = [summary.median(k, metric) for k in ours]
        peer, base = summary.median(aiohttp, metric), summary.median(floor, metric)
        known = [v for v in values if not math.isnan(v)]

        def ratios(reference: float, known: list[float] = known) -> str:
            if not known or math.isnan(reference) or not reference:
                return "-"
            low, high = min(known) / reference, max(known) / reference
            return f"{low:.2f}x" if len(known) == 1 else f"{low:.2f}-{high:.2f}x"

        cells = [number(v) for v in values] + ["-"] * (3 - len(values))
        rows.append(
            [f"{label} ({key})", *cells, number(peer), number(base), ratios(peer), ratios(base)]
        )
    if not rows:
        return ""
    return (
        "### Headlines: acytoo_raw per runtime against aiohttp and the floor\n\n"
        "Medians from the tables below (text clients; chat: the chat clients; import: "
        "`import acytoo_raw`). Ratios: acytoo_raw's figure divided by the reference, over the "
        "three runtimes; for MB/s and requests/s above 1 is better, elsewhere below 1.\n\n"
        + markdown_table(header, rows)
    )


def full_text(
    preamble: Sequence[str],
    summaries: Sequence[ScenarioSummary],
    checks: Sequence[TargetCheck],
) -> str:
    parts = ["\n".join(preamble), LEGEND]
    if block := headlines_block(summaries):
        parts.append(block)
    parts += [scenario_block(summary) for summary in summaries]
    if block := targets_block(checks):
        parts.append(block)
    return "\n\n".join(parts) + "\n"


def _json_safe(value: object) -> object:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(
    path: Path,
    meta: dict[str, object],
    summaries: Sequence[ScenarioSummary],
    measurements: Sequence[Measurement],
    checks: Sequence[TargetCheck],
) -> None:
    document = {
        "meta": meta,
        "scenarios": [
            {
                "key": s.scenario.key,
                "title": s.scenario.title,
                "parameters": asdict(s.scenario),
                "server_cpu_share": s.server_cpu_share,
                "repetitions": s.reps,
                "clients": {
                    row.client.key: {
                        "label": row.client.label,
                        "status": row.status,
                        "error": row.error,
                        "note": row.note,
                        "ok_runs": row.ok,
                        "runs": row.runs,
                        "figures": {metric: asdict(cell) for metric, cell in row.cells.items()},
                    }
                    for row in s.rows
                },
            }
            for s in summaries
        ],
        "targets": [asdict(c) for c in checks],
        "measurements": [asdict(m) for m in measurements],
    }
    path.write_text(json.dumps(_json_safe(document), indent=1, ensure_ascii=False) + "\n")
