"""Was the budget enough? The expected best validation score of each architecture as a
function of the number of trials (Dodge et al. 2019), and a warning when more trials could
reorder the top two."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks import rundir
from reports.markdown import markdown_table, md_escape
from reports.stats import expected_best

Curve = tuple[np.ndarray, np.ndarray]  # expected best score for 1..N trials, its std


def expected_best_curves(trials: pd.DataFrame) -> dict[str, Curve]:
    """Per architecture, the expected best score for 1..N of its N completed trials; a
    trial at the defaults (``origin``) is in every search, not drawn (``expected_best``)."""
    if trials.empty or "score" not in trials:
        return {}
    done = trials[trials["status"] == "COMPLETED"].copy()
    done["score"] = pd.to_numeric(done["score"], errors="coerce")
    done = done.dropna(subset=["score"])
    origin = done["origin"] if "origin" in done else pd.Series("", index=done.index)
    curves = {}
    for arch, group in done.groupby("architecture", sort=True):
        first = origin[group.index] == rundir.ORIGIN_DEFAULTS
        fixed = float(group["score"][first].iloc[0]) if first.sum() == 1 else None
        drawn = group["score"][~first] if fixed is not None else group["score"]
        curves[arch] = expected_best(drawn.to_numpy(), fixed=fixed)
    return curves


def enough_section(curves: dict[str, Curve], order: list[str]) -> list[str]:
    """The leaderboard's "Was the budget enough?" section as markdown lines (none without
    trial scores; a sentence, no table, when every search ran a single trial)."""
    if not curves:
        return []
    if all(len(curves[arch][0]) == 1 for arch in curves):
        return ["## Was the budget enough?", "",
                "Every search ran one trial, so there is no curve to read: each architecture "
                "was trained at its defaults. Give the searches "
                "trials (`--trials N`, or budget `standard`) to see whether more would have "
                "found better configurations.", ""]
    return ["## Was the budget enough?", "",
            "The expected best validation score of a search with 1 to N trials, estimated "
            "from each architecture's N trial scores (Dodge et al. 2019, \"Show your work\"), "
            "± one standard deviation; a search's first trial at the architecture's defaults "
            "is in every search, so n trials are it and the best of n - 1 draws from the "
            "others. A curve still rising at N means more trials would "
            "likely have found a better configuration; the verdict warns when that could "
            "reorder the top two.", "", enough_table(curves, order), ""]


def enough_table(curves: dict[str, Curve], order: list[str]) -> str:
    """One row per architecture (in ``order``, the ranking): trials, the expected best with
    1 trial and with all N, and the last step (N - 1 to N trials)."""
    rows = []
    for arch in [a for a in order if a in curves]:
        means, stds = curves[arch]
        last = f"{means[-1] - means[-2]:+.4f}" if len(means) > 1 else "-"
        rows.append([md_escape(arch), len(means), f"{means[0]:.4f} ± {stds[0]:.4f}",
                     f"{means[-1]:.4f} ± {stds[-1]:.4f}", last])
    headers = ["architecture", "trials", "expected best, 1 trial",
               "expected best, all trials", "gain of the last trial"]
    return markdown_table(rows, headers)


def reorder_warning(curves: dict[str, Curve], order: list[str]) -> str | None:
    """A verdict line when more trials could reorder the two most accurate architectures:
    their expected-best curves cross, or the last trial gained one of them more than the gap
    between them. None when neither holds (or there are not two to compare)."""
    first, second = (order + [None, None])[:2]
    if first not in curves or second not in curves:
        return None
    a, b = curves[first][0], curves[second][0]
    common = min(len(a), len(b))
    gap = a[common - 1] - b[common - 1]
    crossing = bool(np.any(np.sign(a[:common] - b[:common]) * np.sign(gap) < 0))
    gains = [c[-1] - c[-2] for c in (a, b) if len(c) > 1]
    rising = bool(gains) and max(gains) >= abs(gap)
    if not (crossing or rising):
        return None
    why = ("their expected-best validation curves cross" if crossing else
           f"one more trial gained {max(gains):.4f}, more than the {abs(gap):.4f} between them")
    return (f"- **More trials could reorder {md_escape(first)} and {md_escape(second)}**: {why} "
            f"(with {common} trial(s) each; see \"Was the budget enough?\")")
