"""Tables (rich) and bar charts (matplotlib, a PNG where figures cannot be shown) of bench results."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipekit.data.plotting import get_pyplot, savefig_or_show

if TYPE_CHECKING:
    from pipekit.bench.compare import Comparison, Sweep
    from pipekit.bench.profile import EpochProfile, LoaderProfile

_WHERE = {"main": "main thread (adds up to the epoch)", "prefetch": "prefetch threads (beside it)",
          "build": "cache-building threads (share of the build)", "workers": "worker processes (beside them)",
          "aug": "augmentation threads (beside it)", "other": "other threads (beside it)"}


def _phase_rows(table: Any, phase: EpochProfile) -> None:
    per_batch = 1e3 / max(phase.batches, 1)
    table.add_row(f"[bold]{phase.label}[/bold]", "", f"{phase.wall_s:.3f}",
                  f"{phase.wall_s * per_batch:.2f}", f"{phase.items_per_s:,.0f} items/s", end_section=False)
    where_seen: list[str] = []
    for s in phase.stages:
        if s.where not in where_seen:
            where_seen.append(s.where)
            n = phase.threads.get(s.where)
            label = _WHERE.get(s.where, s.where) + (f", {n}" if n and s.where != "main" else "")
            table.add_row(f"  [italic]{label}[/italic]", "", "", "", "")
        table.add_row(f"    {s.name}", s.kind, f"{s.seconds:.3f}", f"{s.seconds * per_batch:.2f}", f"{s.share:.1%}")
        if s.where == "main" and s is [t for t in phase.stages if t.where == "main"][-1]:
            rest = phase.unaccounted_s
            table.add_row("    (outside every stage)", "", f"{rest:.3f}", f"{rest * per_batch:.2f}",
                          f"{rest / phase.wall_s:.1%}" if phase.wall_s else "")
    table.add_section()


def profile_table(p: LoaderProfile) -> Any:
    from rich.table import Table

    title = (f"{p.name} ({p.subset + ', ' if p.subset else ''}bs {p.bs}, num_workers {p.num_workers}, {p.device}): "
             f"{p.items_per_s:,.0f} items/s, {p.batches_per_s:,.1f} batches/s warm")
    t = Table(title=title, caption=f"share: of the epoch for the main thread, of their capacity for the threads "
                                   f"beside it; measuring cost {p.probe_overhead:.2%} by count, "
                                   f"{p.overhead:+.1%} measured against untimed epochs", title_justify="left")
    for col, right in (("stage", False), ("kind", False), ("seconds", True), ("ms/batch", True), ("share", True)):
        t.add_column(col, justify="right" if right else "left")
    for phase in (p.cold, p.warm):
        if phase is not None:
            _phase_rows(t, phase)
    return t


def plot_profile(p: LoaderProfile, path: str | os.PathLike | None = None) -> Path | None:
    """One horizontal bar per phase and kind of thread, split by stage (share of the epoch or of capacity)."""
    plt = get_pyplot()
    bars: list[tuple[str, list[tuple[str, float]]]] = []
    for phase in (p.cold, p.warm):
        if phase is None:
            continue
        for where in dict.fromkeys(s.where for s in phase.stages):
            parts = [(s.name, s.share) for s in phase.stages if s.where == where]
            if where == "main" and phase.wall_s:
                parts.append(("(outside every stage)", max(phase.unaccounted_s, 0.0) / phase.wall_s))
            bars.append((f"{phase.label.split(' (')[0]}\n{where}", parts))
    fig, ax = plt.subplots(figsize=(10, 0.9 * len(bars) + 1.5))
    names = list(dict.fromkeys(n for _, parts in bars for n, _ in parts))
    colors = {n: plt.get_cmap("tab20")(i % 20) for i, n in enumerate(names)}
    for y, (_label, parts) in enumerate(bars):
        left = 0.0
        for n, share in parts:
            ax.barh(y, share, left=left, color=colors[n], label=n, edgecolor="white")
            if share > 0.06:
                ax.text(left + share / 2, y, f"{share:.0%}", ha="center", va="center", fontsize=8)
            left += share
    ax.set_yticks(range(len(bars)), [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xlabel("share of the epoch (main thread) or of the threads' capacity (the others)")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    # beside the bars, whatever their number (below them it covered the axis label when there were few)
    ax.legend(uniq.values(), uniq.keys(), loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.set_title(f"{p.name}: {p.items_per_s:,.0f} items/s warm")
    return savefig_or_show(fig, path, name="loader_profile")


def comparison_table(c: Comparison) -> Any:
    from rich.table import Table

    t = Table(title=f"{c.names[0]} vs {c.names[1]}: {c.verdict}", title_justify="left")
    for col in ("round", f"{c.names[0]} items/s", f"{c.names[1]} items/s", "ratio"):
        t.add_column(col, justify="right")
    for i, (a, b) in enumerate(zip(c.rates_a, c.rates_b)):
        t.add_row(str(i + 1), f"{a:,.0f}", f"{b:,.0f}", f"{a / b:.2f}x")
    t.add_row("median", f"{c.median_a:,.0f}", f"{c.median_b:,.0f}", f"{c.ratio:.2f}x "
              f"(range {c.ratio_min:.2f}-{c.ratio_max:.2f})", end_section=True)
    return t


def sweep_table(s: Sweep) -> Any:
    from rich.table import Table

    t = Table(title=f"{s.name}: {s.headline}", title_justify="left")
    rates, best = s.rates, s.best  # each worked out from the rounds at every access
    # no best when every setting ran alike (the rates then differ by noise): no "vs best" column either
    top = None if best is None else rates[best]
    for col in ("num_workers", "items/s (median)", "rounds") + (() if top is None else ("vs best",)):
        t.add_column(col, justify="right")
    for w, rate in rates.items():
        cells = [str(w), f"{rate:,.0f}", ", ".join(f"{r:,.0f}" for r in s.rounds[w])]
        if top is not None:
            cells.append(f"{rate / top:.2f}x")
        t.add_row(*cells)
    return t
