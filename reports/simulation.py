"""How often the verdict claims a difference that is not there, and how often it sees one
that is: ``python -m reports.simulation`` (seconds to a minute; ``--runs N``, ``--seed S``).

Simulated runs, each a set of architectures on one test set of ``--images`` images: every
final training of an architecture is a model whose accuracy is the architecture's true
accuracy plus a seed's deviation (normal, standard deviation ``seed_sd``), and each test
image is right or wrong for it independently. The rules scored are the verdict's own
functions (``reports.verdict``) on those predictions:

- the old rule: the observed best against each other one (exact McNemar, Holm over those
  comparisons); a false claim is any "X wins" when every architecture is equally good;
- the possibly-best set (all-pairs Holm): a false claim is an architecture left out of it
  when every architecture is equally good.

With one final seed, what a rule claims about architectures counts training randomness as
evidence; with several, the pairwise test is Welch's over the seeds. The power columns put
one architecture ahead by ``gap`` and count how often the old rule names it the winner of
every comparison, and how often the set is that architecture alone.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.verdict import possibly_best, significance

ACCURACY = 0.90


@dataclass(frozen=True)
class Case:
    architectures: int
    seed_sd: float
    seeds: int = 1
    gap: float = 0.0  # the first architecture's lead in true accuracy


def simulate_run(case: Case, images: int, rng: np.random.Generator) -> tuple[dict, set[str]]:
    """One run: the old rule's tests against the observed best, and the possibly-best set."""
    names = [f"a{i}" for i in range(case.architectures)]
    truth = np.full(case.architectures, ACCURACY)
    truth[0] += case.gap
    correct, seeds, means = {}, {}, []
    for name, true in zip(names, truth, strict=True):
        models = np.clip(true + rng.normal(0.0, case.seed_sd, case.seeds), 0.0, 1.0)
        right = rng.random((case.seeds, images)) < models[:, None]
        correct[name] = right[0]
        seeds[name] = right.mean(axis=1).tolist()
        means.append(float(np.mean(seeds[name])))
    table = pd.DataFrame({"architecture": names, "test_accuracy": means,
                          "final_seeds": case.seeds})
    table = table.sort_values("test_accuracy", ascending=False, kind="stable").reset_index(drop=True)
    return significance(table, correct, seeds), set(possibly_best(table, correct, seeds))


def rates(case: Case, runs: int, images: int, seed: int) -> dict[str, float]:
    """The share of ``runs`` in which each rule claims a difference (and, with a ``gap``,
    the share in which it names the better architecture alone)."""
    rng = np.random.default_rng(seed)
    old_any = old_all = set_short = set_alone = old_named = 0
    for _ in range(runs):
        tests, members = simulate_run(case, images, rng)
        wins = [t.significant for t in tests.values()]
        old_any += any(wins)
        old_all += bool(wins) and all(wins)
        set_short += len(members) < case.architectures
        set_alone += members == {"a0"}
        top_is_best = all(t.significant for t in tests.values()) and "a0" not in tests
        old_named += top_is_best
    if case.gap:
        return {"old rule names it the winner of all": old_named / runs,
                "set is it alone": set_alone / runs}
    return {"old rule: some 'X wins'": old_any / runs,
            "old rule: 'beats every other'": old_all / runs,
            "set leaves one out": set_short / runs}


CASES = [Case(n, sd, seeds) for seeds in (1, 3) for n in (2, 5, 9) for sd in (0.0, 0.002, 0.004)]
POWER = [Case(5, 0.002, seeds, gap) for seeds in (1, 3) for gap in (0.005, 0.01)]


def table(cases: list[Case], runs: int, images: int, seed: int) -> str:
    rows = []
    for case in cases:
        rows.append({"architectures": str(case.architectures), "seeds": str(case.seeds),
                     "seed sd": case.seed_sd, **({"gap": case.gap} if case.gap else {}),
                     **rates(case, runs, images, seed)})
    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.simulation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="simulated runs per case")
    parser.add_argument("--images", type=int, default=10_000, help="test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"Equal architectures (true accuracy {ACCURACY}), {args.runs} runs each, "
          f"{args.images:,} test images: the share of runs with a false claim\n")
    print(table(CASES, args.runs, args.images, args.seed))
    print("\nOne architecture better by the gap: the share of runs that find it\n")
    print(table(POWER, args.runs, args.images, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
