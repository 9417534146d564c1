"""The verdict: who wins on accuracy, speed and size, and whether the accuracy lead is real."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from reports.markdown import markdown_table, md_escape
from reports.stats import (
    MCNEMAR,
    POWER,
    SIGNIFICANCE,
    PairedComparison,
    compare_paired,
    compare_seeds,
    holm,
    within_noise,
)


def significance(table: pd.DataFrame, correct: dict[str, np.ndarray],
                 seeds: dict[str, list[float]]) -> dict[str, PairedComparison]:
    """The most accurate architecture against each other one, with the test that compares
    the quantity the ranking uses: Welch's t over the final seeds' accuracies when both have
    two or more, else the exact McNemar test on the same test images. Holm-corrected over
    the winner's comparisons."""
    if table.empty or table.at[0, "architecture"] not in correct:
        return {}
    top = table.at[0, "architecture"]
    tests = {}
    for arch in table["architecture"].iloc[1:]:
        test = pairwise_test(top, arch, correct, seeds)
        if test is not None:
            tests[arch] = test
    adjusted = holm([t.p_value for t in tests.values()])  # a NaN (untestable) stays NaN
    return {arch: dataclasses.replace(t, p_adjusted=p)
            for (arch, t), p in zip(tests.items(), adjusted, strict=True)}


def pairwise_test(first: str, second: str, correct: dict[str, np.ndarray],
                  seeds: dict[str, list[float]]) -> PairedComparison | None:
    """The test of ``first`` against ``second`` that ``significance`` uses: Welch's t over
    their seeds when both have two or more, else the exact McNemar test on the first final
    training's predictions; None when they have no comparable predictions."""
    if len(seeds.get(first, [])) > 1 and len(seeds.get(second, [])) > 1:
        return compare_seeds(seeds[first], seeds[second])
    if first in correct and second in correct and len(correct[first]) == len(correct[second]):
        return compare_paired(correct[first], correct[second])
    return None


def possibly_best(table: pd.DataFrame, correct: dict[str, np.ndarray],
                  seeds: dict[str, list[float]]) -> list[str]:
    """The architectures no other is shown more accurate than: every pair tested, Holm over
    all of the pairs, so the set stays valid although the best is picked after looking. An
    architecture without predictions cannot be shown worse and stays in."""
    names = list(table["architecture"])
    pairs = [(a, b, pairwise_test(a, b, correct, seeds))
             for i, a in enumerate(names) for b in names[i + 1:]]
    pairs = [(a, b, t) for a, b, t in pairs if t is not None]
    adjusted = holm([t.p_value for _, _, t in pairs])
    worse = set()
    for (a, b, test), p in zip(pairs, adjusted, strict=True):
        if p < SIGNIFICANCE and test.difference != 0:  # NaN (untestable) never is
            worse.add(b if test.difference > 0 else a)
    return [name for name in names if name not in worse]


def possibly_best_line(table: pd.DataFrame, members: list[str],
                       tests: dict[str, PairedComparison]) -> str:
    """The headline: the possibly-best set, one architecture only when the set has one."""
    models = any(t.test == MCNEMAR for t in tests.values())
    what = "trained models" if models else "architectures"
    rule = (f"not shown less accurate than any other in a pairwise test, Holm-adjusted over "
            f"all {len(table) * (len(table) - 1) // 2} pairs, p < {SIGNIFICANCE}")
    names = ", ".join(md_escape(m) for m in members)
    if len(table) < 2:
        return f"- **Possibly best**: {names} (the only one ranked)"
    if len(members) == 1:
        return f"- **Possibly best** ({rule}): **{names}** alone of the {what} compared"
    return f"- **Possibly best** ({rule}): {names}; the data do not tell these {what} apart"


def verdict(table: pd.DataFrame, tests: dict[str, PairedComparison],
            members: list[str] | None = None) -> list[str]:
    """A few lines naming the winner of each criterion and what it costs."""
    if table.empty:
        return ["No architecture produced a result."]
    top = table.iloc[0]
    untested = [a for a in table["architecture"].iloc[1:] if a not in tests]
    lines = [possibly_best_line(table, members, tests)] if members is not None else []
    lines.append(f"- **Most accurate**: {md_escape(top['architecture'])} "
                 f"(test accuracy {top['test_accuracy']:.4f})" + _tie_text(tests, untested)
                 + _scope_text(table, tests))
    criteria = [
        ("Fastest at inference", "inference_latency_ms", "inference_latency_iqr_ms", True,
         "{:.2f} ms per image at batch 1"),
        ("Fastest to train", "train_images_per_second", "train_images_per_second_iqr", False,
         "{:,.0f} training images/s"),
        ("Smallest", "total_params", None, True, "{:,.0f} parameters"),
    ]
    for label, column, spread, smallest, fmt in criteria:
        lines.append(_criterion_line(table, label, column, spread, smallest, fmt))
    front = ", ".join(md_escape(a) for a in table.loc[table["pareto"], "architecture"])
    lines.append(f"- **Pareto-optimal** (no other is at least as accurate, fast and small, and "
                 f"better on one; latencies within each other's noise count as equal): {front}")
    return lines


def _criterion_line(table: pd.DataFrame, label: str, column: str, spread: str | None,
                    smallest: bool, fmt: str) -> str:
    """The best architecture on one measurement, and every other within its noise (their
    interquartile ranges overlap; exact ties for a count)."""
    values = table[column].astype(float).tolist()
    spreads = table[spread].astype(float).tolist() if spread in table else [0.0] * len(values)
    close = within_noise(values, spreads, smallest)
    if not any(close):
        return f"- **{label}**: not measured"
    present = [i for i, v in enumerate(values) if v == v]
    best = (min if smallest else max)(present, key=lambda i: values[i])
    row, top = table.iloc[best], table.iloc[0]
    cost = ""
    if row["architecture"] != top["architecture"]:
        cost = f"; {top['test_accuracy'] - row['test_accuracy']:.4f} less test accuracy than the most accurate"
    others = [f"{md_escape(table.iloc[i]['architecture'])} ({fmt.format(values[i])})"
              for i, near in enumerate(close) if near and i != best]
    kind = ("within its measurement noise (overlapping interquartile ranges)" if spread
            else "the same count")
    noise = f"; {kind}: {', '.join(others)}" if others else ""
    return f"- **{label}**: {md_escape(row['architecture'])} ({fmt.format(row[column])}{cost}){noise}"


def _tie_text(tests: dict[str, PairedComparison], untested: list[str]) -> str:
    """What the tests against the most accurate say: whom it beats, who is tied with it,
    who is better on what the test compared, and who could not be tested."""
    if untested and not tests:
        return "; no paired predictions, so significance was not tested"
    kinds = " and ".join(sorted({t.test for t in tests.values()}))
    beaten = [a for a, t in tests.items() if t.significant]
    # one final training: a claim about the trained models on this test set, not the architectures
    models = any(t.test == MCNEMAR for t in tests.values())
    subject, other = (("its trained model beats", "the trained model of ") if models
                      else ("it beats", ""))
    better = [a for a, t in tests.items() if t.reversed]
    spreadless = [a for a, t in tests.items() if not t.testable]
    tied = [a for a, t in tests.items() if t.testable and not t.significant and not t.reversed]
    parts = []
    if beaten and not (tied or better or spreadless or untested):
        whom = "every other trained model" if models else "every other architecture"
        parts.append(f"{subject} {whom} ({kinds}, Holm-adjusted p < {SIGNIFICANCE})")
    elif beaten:
        parts.append(f"{subject} {other}{', '.join(map(md_escape, beaten))} ({kinds}, "
                     f"Holm-adjusted p < {SIGNIFICANCE})")
    if tied:
        names = ", ".join(f"{md_escape(a)} (p = {tests[a].p_value:.3f}, Holm "
                          f"{tests[a].p_adjusted:.3f}; {_detectable_text(tests[a])})" for a in tied)
        parts.append(f"**no significant difference** from {names} ({kinds}): the order among "
                     "them may be noise")
    for arch in better:
        parts.append(f"{md_escape(arch)} is more accurate on the compared predictions "
                     f"({tests[arch].test}, Holm p = {tests[arch].p_adjusted:.3g}): the ranking "
                     "by mean and the test disagree")
    if spreadless:
        parts.append(f"{', '.join(map(md_escape, spreadless))}: no spread between the seeds of "
                     "either, so Welch's test is undefined and nothing is claimed")
    parts += [f"{md_escape(a)} was not tested (no per-image predictions)" for a in untested]
    return "".join(f"; {part}" for part in parts)


def _detectable_text(test: PairedComparison) -> str:
    """What the test could have seen: the smallest difference it would call significant."""
    if test.detectable is None:
        return "too few differing results for any difference to be detectable"
    return (f"a true difference of its critical {test.detectable:.4f} is missed nearly half "
            f"the time; one of {test.powered:.4f} is found {POWER:.0%} of the time")


def _scope_text(table: pd.DataFrame, tests: dict[str, PairedComparison]) -> str:
    """What a McNemar test covers: which test images were drawn, not training randomness;
    where the ranked means are over several seeds, only each one's first final training."""
    if not any(t.test == MCNEMAR for t in tests.values()):
        return ""
    seeds = table.set_index("architecture")["final_seeds"].fillna(1)
    if (seeds > 1).any():
        return (". Where an architecture has one final training, the test compares the first "
                "final training of each on the test images, not the means ranked here; it "
                "covers the sampling of the test images, not training randomness")
    return (". With one final training per architecture, this is a claim about the trained "
            "models on this test set, not about the architectures: the test covers the sampling "
            "of the test images, not training randomness, and another seed may reorder them; "
            "two or more final seeds (--final-seeds 3) let the test count it")


def significance_table(table: pd.DataFrame, tests: dict[str, PairedComparison]) -> str:
    best = md_escape(table.at[0, "architecture"])
    rows = [
        [
            md_escape(arch), t.test, "-" if t.only_best is None else t.only_best,
            "-" if t.only_other is None else t.only_other,
            f"{t.difference:+.4f} [{t.low:+.4f}, {t.high:+.4f}]", f"{t.p_value:.4g}",
            f"{t.p_adjusted:.4g}", "-" if t.detectable is None else f"{t.detectable:.4f}",
            "-" if t.powered is None else f"{t.powered:.4f}", _row_verdict(t, best),
        ]
        for arch, t in tests.items()
    ]
    headers = ["against", "test", f"only {best} right", "only the other right",
               "accuracy difference [95% CI]", "p", "p (Holm)", "critical difference",
               f"found with {POWER:.0%} power", "verdict"]
    return markdown_table(rows, headers)


def _row_verdict(test: PairedComparison, best: str) -> str:
    if not test.testable:
        return "not testable"
    if test.significant:
        return f"{best} wins" if test.test != MCNEMAR else f"{best}'s trained model is more accurate"
    return "the other is more accurate" if test.reversed else "no significant difference"
