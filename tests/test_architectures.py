"""Every registered architecture, parametrized over the registry (timm-style).

Each builds with its default hyperparameters and with sampled ones, has the right output
shape, comes back uncompiled, and survives a training step with a finite loss.
"""

import keras
import keras_tuner as kt
import numpy as np
import pytest

from benchmarks.budget import make_budget
from benchmarks.check import sample_hyperparameters
from benchmarks.recipe import SuiteHyperModel
from models.registry import get_architecture, list_architectures
from tests.conftest import synthetic_images

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
SAMPLE_SEEDS = [1, 2]
# The fast lane (-m "not slow") builds and trains only these; every other architecture
# takes 3-18 s a case on 2 cores.
FAST = {"mlp"}


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
    from benchmarks.data import make_splits

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
