"""The budget: presets, overrides, invalid values, and a stable, sensitive hash."""

import dataclasses

import pytest

from benchmarks.budget import PRESETS, Budget, BudgetError, budget_from_dict, make_budget


def test_presets_exist_and_grow():
    assert list(PRESETS) == ["smoke", "quick", "standard", "full"]
    cost = {
        name: b.trials * b.epochs * max(b.train_size, 1) + b.final_epochs * max(b.final_train_size, 1)
        for name, b in PRESETS.items()
    }
    assert cost["smoke"] < cost["quick"]
    assert PRESETS["smoke"].trials == 1 and PRESETS["smoke"].epochs == 1


def test_override_replaces_only_that_field():
    budget = make_budget("quick", trials=7, batch_size=None)
    assert budget.trials == 7
    assert budget.batch_size == PRESETS["quick"].batch_size
    assert budget.name == "quick"


def test_hash_is_stable_across_instances_and_ignores_the_name():
    a = make_budget("quick")
    b = Budget(**{**a.to_dict(), "name": "renamed"})
    assert a.hash == b.hash
    assert len(a.hash) == 12
    # Pinned: changing the hashing scheme silently would orphan every existing run directory.
    # Fields added later are left out at the value that meant what budgets did before them.
    before_the_recipe = Budget(schedule="constant", weight_decay_max=0.0, label_smoothing=0.0)
    assert before_the_recipe.hash == "24c9d04d1613"
    assert a.hash == budget_from_dict(a.to_dict()).hash


def test_a_manifest_older_than_a_field_reads_back_with_its_old_hash():
    old = Budget(schedule="constant", weight_decay_max=0.0)
    fields = {k: v for k, v in old.to_dict().items()
              if k not in ("schedule", "warmup", "weight_decay_min", "weight_decay_max",
                           "label_smoothing")}
    assert budget_from_dict(fields).hash == old.hash == "24c9d04d1613"


def test_the_time_presets_run_by_epochs_keep_their_epoch_hashes():
    """quick and standard are time budgets; run by epochs they are the epoch budgets they
    were, so that their runs still resume: an epoch budget's hash leaves the unused seconds
    out."""
    assert make_budget("quick").budget_by == make_budget("standard").budget_by == "time"
    assert make_budget("quick", budget_by="epochs").hash == "2b6e7a129b59"
    assert make_budget("standard", budget_by="epochs").hash == "f0e29267165d"
    assert make_budget("quick").hash == "0c4dcd28f7dc"
    assert (make_budget("quick").trials, make_budget("quick", budget_by="epochs").trials) == (1, 2)
    # by time, more images cost no time: quick trains on all; its epoch plan keeps its sizes
    assert (make_budget("quick").train_size, make_budget("quick").final_train_size) == (5000, 0)
    by_epochs = make_budget("quick", budget_by="epochs")
    assert (by_epochs.train_size, by_epochs.final_train_size) == (3000, 12000)
    assert make_budget("quick", budget_by="epochs", train_size=4000).train_size == 4000
    assert make_budget("standard").hash == "66debc57a080"


def test_a_change_the_budget_would_not_use_is_refused_and_a_used_one_is_not():
    from benchmarks.budget import BudgetError
    from benchmarks.run.options import budget_argv

    with pytest.raises(BudgetError, match="--final-epochs would change nothing"):
        make_budget("standard", final_epochs=5)
    assert make_budget("standard", budget_by="epochs", final_epochs=5).final_epochs == 5
    assert make_budget("quick", epochs=1).budget_by == "time", "the preset's own value passes"
    # a worker is given every field: an epoch budget's seconds are left out, so that its
    # preset's seconds, unused and unhashed, are not a change
    by_epochs = dataclasses.replace(make_budget("smoke"), name="custom", epochs=2)
    argv = budget_argv(by_epochs)
    assert "--trial-seconds" not in argv and "--final-seconds" not in argv
    assert argv[:2] == ["--budget", "quick"]
    given = {argv[i][2:].replace("-", "_"): by_epochs.to_dict()[argv[i][2:].replace("-", "_")]
             for i in range(2, len(argv)) if argv[i].startswith("--")
             and argv[i][2:].replace("-", "_") in by_epochs.to_dict()}
    assert make_budget("quick", **given).hash == by_epochs.hash, "what the worker rebuilds"


def test_a_time_budget_hashes_what_its_seconds_count(tmp_path):
    """A time budget made when its seconds counted a training's first step (compilation
    included) hashed its fields alone; it must not resume under today's meaning."""
    import hashlib
    import json

    from benchmarks import rundir
    from benchmarks.run.manifest import check_same_budget
    from benchmarks.run.options import RunOptions

    budget = make_budget("quick", budget_by="time", trial_seconds=10, final_seconds=40)
    fields = {k: v for k, v in budget.to_dict().items() if k != "name"}
    before = hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()[:12]
    assert budget.hash != before
    manifest = {"budget": {"hash": before, "fields": budget.to_dict()}}
    options = RunOptions(architectures=["mlp"], budget=budget, dataset="fashion_mnist",
                         output=tmp_path, name="old")
    with pytest.raises(rundir.RunDirError, match=r"holds a run with a different budget \(the "
                       r"same fields, which meant something else in the archbench that made "
                       rf"it: budget hash {before} -> {budget.hash}\)"):
        check_same_budget(manifest, options, tmp_path / "old")


def test_a_budget_hashes_where_its_searches_start(tmp_path):
    """Random and Bayesian searches start from the defaults (tuning.defaults_first): a run
    whose searches began at random draws, hashed before, must not resume with its remaining
    architectures starting from their defaults. Hyperband's searches did not change."""
    from benchmarks import rundir
    from benchmarks.run.manifest import check_same_budget
    from benchmarks.run.options import RunOptions

    budget = make_budget("quick")
    before = "270f18e8774b"  # quick's hash when its searches began at random draws
    assert budget.hash != before
    manifest = {"budget": {"hash": before, "fields": budget.to_dict()}}
    options = RunOptions(architectures=["mlp"], budget=budget, dataset="fashion_mnist",
                         output=tmp_path, name="old")
    with pytest.raises(rundir.RunDirError, match="which meant something else"):
        check_same_budget(manifest, options, tmp_path / "old")
    assert make_budget("quick", budget_by="epochs", tuner="hyperband").hash == "a9765df05b2b"


HASHED_FIELDS = [f.name for f in dataclasses.fields(Budget) if f.name != "name"]
# The valid values of the fields that hold a name: every one is tried.
CHOICES = {
    "tuner": ["random", "bayesian", "hyperband"],
    "distribute": ["none", "mirrored"],
    "mixed_precision": ["auto", "on", "off", "bfloat16"],
    "xla": ["auto", "on", "off"],
    "schedule": ["cosine", "constant"],
    "budget_by": ["epochs", "time"],
    "backend": ["tensorflow", "jax"],
}
# Fields whose other values need others set: the base budget of their test holds those.
COMPANIONS = {"budget_by": {"trial_seconds": 30, "final_seconds": 60},
              "tuner": {"budget_by": "epochs"}}  # hyperband hands out epochs


def changed_values(field: str, value) -> list:
    """Valid values of ``field`` other than ``value``: every other choice of a named
    setting, a flipped boolean, an integer + 1, a float doubled; none for anything else."""
    if field in CHOICES:
        return [choice for choice in CHOICES[field] if choice != value]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1]
    if isinstance(value, float):
        return [value * 2 if value else 0.1]
    return []


def test_the_choices_are_budget_fields():
    assert set(CHOICES) <= set(HASHED_FIELDS)


@pytest.mark.parametrize("field", HASHED_FIELDS)
def test_hash_changes_with_every_field(field):
    base = make_budget("quick", **COMPANIONS.get(field, {}))
    values = changed_values(field, getattr(base, field))
    if not values:
        pytest.fail(f"no changed value for the budget field {field!r} "
                    f"({getattr(base, field)!r}): add its valid values to CHOICES")
    for value in values:
        changed = dataclasses.replace(base, **{field: value})  # refuses an invalid value
        assert getattr(changed, field) != getattr(base, field)
        assert changed.hash != base.hash, f"{field}={value!r} leaves the hash unchanged"


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"trials": 0}, "trials must be at least 1"),
        ({"epochs": -2}, "epochs must be at least 1"),
        ({"batch_size": 2.5}, "batch_size must be a whole number"),
        ({"train_size": -1}, "train_size must be at least 0"),
        ({"lr_min": 0}, "lr_min must be a positive number"),
        ({"lr_min": 0.1, "lr_max": 0.01}, "lr_min .* is larger than lr_max"),
        ({"tuner": "grid"}, "unknown tuner 'grid'"),
        ({"augment": "yes"}, "augment must be true or false"),
        ({"distribute": "tpu"}, "unknown distribute strategy 'tpu'; choose one of none, mirrored"),
        ({"mixed_precision": "fp8"}, "mixed_precision must be one of auto, on, off, bfloat16, got 'fp8'"),
        ({"xla": True}, "xla must be one of auto, on, off, got True"),
        ({"colour": 3}, "unknown budget field"),
        ({"schedule": "step"}, "unknown schedule 'step'; choose one of cosine, constant"),
        ({"warmup": 1.0}, "warmup is a share of the steps, from 0 to below 1; got 1.0"),
        ({"label_smoothing": -0.1}, "label_smoothing must be from 0 to below 1"),
        ({"weight_decay_min": 0}, "weight_decay_min must be positive"),
        ({"weight_decay_min": 0.1, "weight_decay_max": 0.01}, "weight_decay_min .* is larger"),
        ({"warmup": "a lot"}, "warmup must be a number"),
    ],
)
def test_invalid_values_are_refused(overrides, message):
    with pytest.raises(BudgetError, match=message):
        make_budget("quick", **overrides)


def test_unknown_preset_is_refused():
    with pytest.raises(BudgetError, match="unknown budget 'huge'; choose one of smoke, quick"):
        make_budget("huge")


def test_final_seeds_follow_the_budget_seed():
    assert make_budget("quick", seed=5, final_seeds=3).final_seed_values() == [5, 6, 7]
