"""Every registered architecture, parametrized over the registry (timm-style).

Each builds with its default hyperparameters and with sampled ones, has the right output
shape, comes back uncompiled, and survives a training step with a finite loss.
"""

import keras
import keras_tuner as kt
import numpy as np
import pytest

from benchmarks.budget import make_budget
from benchmarks.cli.check import sample_hyperparameters
from benchmarks.training.measure import multiply_accumulates
from benchmarks.training.recipe import SuiteHyperModel
from models.registry import get_architecture, list_architectures
from tests.conftest import synthetic_images

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
SAMPLE_SEEDS = [1, 2]
# The fast lane (-m "not slow") builds and trains only these; every other architecture
# takes 3-18 s a case on 2 cores.
FAST = {"mlp"}
# A sampled configuration larger than this (DenseNet-BC-100 with k=24: 89 s for one step on
# 2 cores) is built and run forward, not trained a step: every default is far below it.
TRAIN_STEP_MAX_MACS = 100_000_000


def cases():
    for name in list_architectures():
        marks = () if name in FAST else pytest.mark.slow
        yield pytest.param(name, None, id=f"{name}-default", marks=marks)
        for seed in SAMPLE_SEEDS:
            yield pytest.param(name, seed, id=f"{name}-sample{seed}", marks=marks)


@pytest.mark.parametrize("name,seed", list(cases()))
def test_builds_and_trains_one_step(name, seed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    hp = (kt.HyperParameters() if seed is None
          else sample_hyperparameters(get_architecture(name), INPUT_SHAPE, NUM_CLASSES, seed))
    model = get_architecture(name).build(hp, INPUT_SHAPE, NUM_CLASSES)

    assert isinstance(model, keras.Model)
    assert not model.compiled, "architectures must return uncompiled models"
    assert tuple(model.output_shape) == (None, NUM_CLASSES)

    hypermodel = SuiteHyperModel(get_architecture(name), INPUT_SHAPE, NUM_CLASSES, make_budget("smoke"))
    compiled = hypermodel.build(hp)
    x, y = synthetic_images(16)
    if multiply_accumulates(model) <= TRAIN_STEP_MAX_MACS:
        loss = compiled.train_on_batch(x, y, return_dict=True)["loss"]
        assert np.isfinite(loss)
    probabilities = keras.ops.convert_to_numpy(compiled(x[:4], training=False))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("name", list_architectures())
def test_has_docstring_citing_paper_and_search_space(name):
    doc = get_architecture(name).build.__doc__ or ""
    assert "Reference" in doc, f"{name}: the docstring must cite its paper"
    assert "Search space" in doc, f"{name}: the docstring must describe its search space"


@pytest.mark.slow
@pytest.mark.parametrize("name", list_architectures())
def test_learns_above_chance_after_a_short_training(name, fashion):
    """A few dozen steps on real images must beat chance (0.1) clearly at inference.

    Guards against what a short budget exposes: e.g. batch-norm moving statistics that
    are still at their initial values make every validation score exactly chance.
    """
    from benchmarks.data.splits import make_splits

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    splits = make_splits(fashion, val_size=500, train_size=1280, final_train_size=0, seed=0)
    budget = make_budget("smoke", batch_size=32, epochs=1)
    model = SuiteHyperModel(get_architecture(name), INPUT_SHAPE, NUM_CLASSES, budget).build(
        kt.HyperParameters()
    )
    model.fit(splits.x_tune, splits.y_tune, batch_size=32, epochs=1, verbose=0)
    probabilities = keras.ops.convert_to_numpy(model(splits.x_val, training=False))
    accuracy = np.mean(probabilities.argmax(axis=1) == splits.y_val)
    assert accuracy > 0.3, f"{name}: validation accuracy {accuracy:.3f} after 40 steps"


# The input shapes of the built-in datasets and a larger one: digits, MNIST-like, CIFAR, 64x64.
INPUT_SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3), (64, 64, 3)]
# (architecture, shape) pairs an architecture may refuse with NotApplicable: none today.
NOT_APPLICABLE: set[tuple[str, tuple[int, int, int]]] = set()


@pytest.mark.parametrize("shape", INPUT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
    for name in list_architectures()])
def test_builds_for_every_input_shape_or_says_it_is_not_applicable(name, shape):
    """At its defaults and at three sampled configurations, an architecture either builds a
    model for ``shape`` with the right output, or raises NotApplicable saying why."""
    from models.registry import NotApplicable

    architecture = get_architecture(name)
    keras.backend.clear_session()
    try:
        configurations = [kt.HyperParameters()] + [
            sample_hyperparameters(architecture, shape, 7, seed) for seed in (1, 2, 3)]
        for hp in configurations:
            model = architecture.build(hp, shape, 7)
            assert tuple(model.input_shape) == (None, *shape)
            assert tuple(model.output_shape) == (None, 7)
    except NotApplicable as exc:  # allowed only where listed, with the reason
        assert (name, shape) in NOT_APPLICABLE, f"{name} refuses {shape}: {exc}"
        assert str(exc), f"{name} must say why it does not apply to {shape}"


def test_an_architecture_not_made_for_the_input_is_listed_as_not_applicable(tmp_path):
    from benchmarks import rundir
    from models.registry import NotApplicable, register
    from tests.helpers.training import bench, tiny_splits

    @register
    def needs_big_images(hp, input_shape, num_classes):
        """Refuses small inputs."""
        if input_shape[0] < 64:
            raise NotApplicable(f"needs images of 64x64 or more, got {input_shape[0]}x{input_shape[1]}")
        raise AssertionError("unreachable for 28x28 inputs")

    row, trials = bench("needs_big_images", tmp_path, tiny_splits())
    assert row["status"] == rundir.NOT_APPLICABLE
    assert row["error"] == "needs images of 64x64 or more, got 28x28"
    assert trials == []
