"""The leaderboard's budget parity and time sections: what the budget held equal, what each
architecture actually trained, and where the run's time went."""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmarks import rundir, timing
from reports.markdown import markdown_table, md_escape


def usual_machine(results: pd.DataFrame) -> str:
    """The machine hash most rows were measured under ("" when none is recorded)."""
    known = results.loc[results["machine"] != "", "machine"]
    return str(known.mode().iloc[0]) if len(known) else ""


def equal_part(manifest: dict[str, Any]) -> str:
    """What the budget held equal between architectures, in the reader's words."""
    fields = manifest["budget"]["fields"]
    if fields.get("budget_by", "epochs") != "time":
        return (f"equal epochs ({fields.get('epochs')} per trial, {fields.get('final_epochs')} "
                "per final training)")
    env = manifest.get("environment", {})
    gpus = ", ".join(env.get("gpus") or []) or "no GPU"
    return (f"equal training time on this machine ({fields.get('trial_seconds')} s per trial, "
            f"{fields.get('final_seconds')} s per final training; valid only on "
            f"{env.get('cpu', '?')}, {env.get('cpu_count', '?')} CPUs, {gpus})")


def cap_sentence(manifest: dict[str, Any]) -> str:
    fields = manifest["budget"]["fields"]
    caps = [f"{fields[name]:,} {what}" for name, what in
            (("max_params", "parameters (max\\_params)"),
             ("max_macs", "multiply-accumulates per image (max\\_macs)")) if fields.get(name)]
    return (f" The searches sampled no configuration over {' or '.join(caps)}, the same cap "
            "for every architecture." if caps else "")


def _space(size: Any) -> str:
    """A search space's size as the parity table shows it."""
    number = pd.to_numeric(size, errors="coerce")
    return "-" if pd.isna(number) else f"{int(number):,}"


def parity_table(data: Any) -> str:
    """The parity table of a ``RunData`` (its manifest, results and trials)."""
    budget = data.manifest["budget"]
    by_epochs = budget["fields"].get("budget_by", "epochs") == "epochs"
    epochs = budget["fields"].get("epochs") if by_epochs else None
    usual = usual_machine(data.results)
    rows = []
    for _, r in data.results.iterrows():
        mine = data.trials[data.trials["architecture"] == r["architecture"]]
        scores = pd.to_numeric(mine["score"], errors="coerce").dropna()
        epochs_run = pd.to_numeric(mine["epochs_run"], errors="coerce").fillna(0)
        steps_run = pd.to_numeric(mine.get("steps_run", pd.Series(dtype=float)),
                                  errors="coerce").dropna()
        seconds = pd.to_numeric(mine["train_seconds"], errors="coerce").fillna(0)
        failed = int((mine["status"] != "COMPLETED").sum())
        flags = []
        if r["budget_hash"] and r["budget_hash"] != budget["hash"]:
            flags.append(f"different budget {r['budget_hash']}")
        if r["machine"] and r["machine"] != usual:
            flags.append(f"other machine or settings {r['machine']}")
        if epochs and (epochs_run[mine["status"] == "COMPLETED"] < epochs).any():
            flags.append("early-stopped")
        if failed:
            flags.append(f"{failed} failed trial(s)")
        if r["status"] == rundir.NOT_APPLICABLE:
            flags.append("not applicable")
        elif r["status"] != "ok":
            flags.append("no result")
        rows.append([
            md_escape(r["architecture"]), len(mine) - failed, failed, int(epochs_run.sum()),
            f"{int(steps_run.sum()):,}" if len(steps_run) else "-", f"{seconds.sum():.1f}",
            _space(r.get("search_space_size")), f"{scores.max():.4f}" if len(scores) else "-",
            f"{scores.median():.4f}" if len(scores) else "-", md_escape(", ".join(flags)) or "ok",
        ])
    headers = ["architecture", "trials completed", "trials failed", "epochs trained",
               "steps trained", "trial wall s", "configurations in its space", "best trial score", "median trial score", "flags"]
    return markdown_table(rows, headers)


TIME_HEADERS = ["architecture", "wall s", "training", "compilation", "validation", "final evaluation",
                "measurement", "W&B", "Keras Tuner", "waiting for workers", "other",
                "suite overhead"]


def time_table(manifest: dict[str, Any]) -> str | None:
    """Where the time went: each architecture's wall time split into phases, in percent.

    The suite's overhead is everything but training, validation, final evaluation,
    measurement and (distributed runs) the chief's wait for its workers.
    """
    book = manifest.get("time") or {}
    entries = [(md_escape(name), t) for name, t in (book.get("architectures") or {}).items()]
    if book.get("run"):
        entries.append(("**whole run** (data loading to leaderboard)", book["run"]))
    if not entries:
        return None
    rows = []
    for name, t in entries:
        wall = t.get("wall") or 0.0
        share = [f"{100 * t.get(p, 0.0) / wall:.1f}%" if wall else "-" for p in timing.PHASES]
        rows.append([name, f"{wall:,.1f}", *share, f"{100 * timing.overhead_share(t):.1f}%"])
    return markdown_table(rows, TIME_HEADERS)
