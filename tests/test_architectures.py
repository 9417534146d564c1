"""Every registered architecture, parametrized over the registry (timm-style).

Each builds with its default hyperparameters and with sampled ones, has the right output
shape, comes back uncompiled, and survives a training step with a finite loss.
"""

import keras
import keras_tuner as kt
import numpy as np
import pytest

from benchmarks.budget import make_budget
from benchmarks.tuning import SuiteHyperModel
from models.registry import get_architecture, list_architectures
from tests.conftest import synthetic_images

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
SAMPLE_SEEDS = [1, 2]


def sampled_hyperparameters(name: str, seed: int) -> kt.HyperParameters:
    """Random values for every hyperparameter the architecture declares."""
    space = kt.HyperParameters()
    get_architecture(name).build(space, INPUT_SHAPE, NUM_CLASSES)
    hp = kt.HyperParameters()
    for i, param in enumerate(space.space):
        hp.values[param.name] = param.random_sample(seed * 1000 + i)
    return hp


def cases():
    for name in list_architectures():
        yield pytest.param(name, None, id=f"{name}-default")
        for seed in SAMPLE_SEEDS:
            yield pytest.param(name, seed, id=f"{name}-sample{seed}")


@pytest.mark.parametrize("name,seed", list(cases()))
def test_builds_and_trains_one_step(name, seed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    hp = kt.HyperParameters() if seed is None else sampled_hyperparameters(name, seed)
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
