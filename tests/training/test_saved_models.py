"""A model saved by an earlier archbench still loads: the names registered with Keras
(``archbench>FusedAdamW``, ``archbench>WarmupCosine``, ...) do not follow module paths."""

from pathlib import Path

import keras
import numpy as np

import benchmarks.training.recipe  # noqa: F401 - registers the optimizer, schedule and loss

FIXTURE = Path(__file__).parent / "fixtures" / "saved_before_move.keras"


def test_a_model_saved_before_the_layout_change_loads_with_its_optimizer_and_schedule():
    model = keras.saving.load_model(FIXTURE)
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "FusedAdamW"
    schedule = optimizer.get_config()["learning_rate"]  # the schedule, not its value now
    assert schedule["registered_name"] == "archbench>WarmupCosine"
    assert schedule["config"] == {"peak": 1e-3, "warmup_steps": 1, "total_steps": 4}
    assert int(optimizer.iterations.numpy()) == 2  # its slots came back with it
    assert type(model.loss).__name__ == "SmoothedSparseCrossentropy"
    assert model.loss.smoothing == 0.1
    saved = np.load(FIXTURE.with_suffix(".npz"))
    np.testing.assert_allclose(model.predict(saved["probe"], verbose=0), saved["expected"],
                               rtol=1e-5, atol=1e-6)
