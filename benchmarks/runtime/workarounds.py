"""Every use of a private Keras Tuner or TensorFlow name, in one place.

Each entry of ``PRIVATE_NAMES`` says what archbench uses, why, and the versions it was
written for; ``missing()`` lists the ones the installed versions lack, and a test fails
loudly on any (tests/test_workarounds.py). Patches are applied by ``install()``, called
explicitly when a tuner is made, never as a side effect of importing a module.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

KERAS_TUNER = "keras-tuner >=1.4.7,<1.5"
TENSORFLOW = "tensorflow >=2.16,<2.22"
KERAS = "keras >=3.5,<4"
CUSTOM_GRADIENT = "CustomGradient-"  # how TensorFlow names the gradients of tf.custom_gradient


@dataclass(frozen=True)
class PrivateName:
    module: str
    attribute: str  # dotted below the module
    written_for: str
    why: str


PRIVATE_NAMES = [
    PrivateName("keras_tuner.src.utils", "save_json", KERAS_TUNER,
                "replaced by an atomic writer: a kill mid-save would leave half a JSON file"),
    PrivateName("keras_tuner.src.engine.tuner_utils", "SaveBestEpoch", KERAS_TUNER,
                "recognised and dropped: the suite retrains from scratch, never reads it"),
    PrivateName("keras_tuner.src.engine.tuner", "Tuner._build_and_fit_model", KERAS_TUNER,
                "overridden (Keras Tuner keeps it for AutoKeras to override): the callbacks "
                "of one training, and its build charged to training time"),
    PrivateName("keras_tuner.src.distribute.oracle_client", "TIMEOUT", KERAS_TUNER,
                "a worker waits for its chief as long as the chief waits for its workers"),
    PrivateName("keras_tuner.src.distribute.oracle_chief", "OracleServicer", KERAS_TUNER,
                "subclassed: the chief notes when a worker last spoke and which trials ended"),
    PrivateName("keras_tuner.src.distribute.oracle_client", "OracleClient", KERAS_TUNER,
                "a worker that cannot build an architecture still answers its chief"),
    PrivateName("keras_tuner.src.protos", "get_service_grpc", KERAS_TUNER,
                "the chief serves one oracle per architecture on its own port"),
    PrivateName("tensorflow.python.framework.ops", "_gradient_registry._registry", TENSORFLOW,
                "registrations of traced tf.custom_gradient functions dropped between models "
                "(tensorflow/tensorflow#61791: otherwise every traced training step stays alive)"),
    PrivateName("keras.src.utils.module_utils", "tensorflow._available", KERAS,
                "set false on jax: Keras would import TensorFlow, where installed, to seed it "
                "and to check types while saving (seconds of start-up and its log lines)"),
    # benchmarks/training/optimizers.py: the fused Adam (its slot variables, ``_momentums`` and
    # ``_velocities``, are read too; tests/test_optimizers.py checks it trains as Keras' does)
    PrivateName("keras.src.backend.tensorflow.optimizer", "TFOptimizer._backend_update_step",
                KERAS, "overridden: every weight's Adam update in one fused kernel"),
    PrivateName("keras.src.backend.tensorflow.optimizer", "TFOptimizer._apply_weight_decay",
                KERAS, "overridden: AdamW's decay with the learning rate evaluated once a step"),
    PrivateName("keras.src.optimizers.base_optimizer", "BaseOptimizer._get_variable_index",
                KERAS, "a weight's slot variables, for the fused update"),
    PrivateName("keras.src.optimizers.base_optimizer", "BaseOptimizer._use_weight_decay",
                KERAS, "which weights AdamW decays (Keras' exclusions kept)"),
]


def missing() -> list[str]:
    """The private names the installed versions lack, each with what it was written for."""
    absent = []
    for name in PRIVATE_NAMES:
        try:
            value = importlib.import_module(name.module)
            for part in name.attribute.split("."):
                value = getattr(value, part)
        except (ImportError, AttributeError):
            absent.append(f"{name.module}.{name.attribute} (written for {name.written_for})")
    return absent


def install() -> None:
    """Apply the patches; calling it again changes nothing."""
    from keras_tuner.src import utils as kt_utils

    if not getattr(kt_utils.save_json, "_archbench_atomic", False):
        kt_utils.save_json = _atomic_save_json(kt_utils.save_json)


def keep_tensorflow_out() -> None:
    """On a backend other than TensorFlow, Keras no longer imports TensorFlow where it is
    installed (``keras.utils.set_random_seed`` to seed it too, saving a model to check for
    its shapes): its lazy TensorFlow module says it is not available."""
    from keras.src.utils import module_utils

    module_utils.tensorflow._available = False


def _atomic_save_json(original):
    """Keras Tuner's ``save_json``, writing local files atomically (temporary file, fsync,
    rename): a kill while Keras Tuner saves its state leaves the previous state, never
    half a JSON file that the next run could not reload."""
    from benchmarks.rundir import atomic_write_text

    def save_json(path, obj):
        if "://" in str(path):  # remote file systems (gs://...): Keras Tuner's own way
            return original(path, obj)
        text = json.dumps(obj)
        atomic_write_text(Path(path), text)
        return text

    save_json._archbench_atomic = True
    return save_json


def is_best_epoch_checkpoint(callback) -> bool:
    """Whether ``callback`` is Keras Tuner's per-trial checkpoint of the best epoch."""
    from keras_tuner.src.engine import tuner_utils

    return isinstance(callback, tuner_utils.SaveBestEpoch)


def set_oracle_client_timeout(seconds: float) -> None:
    """How long a worker's gRPC calls wait for the chief."""
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = seconds


def release_graphs() -> None:
    """Let TensorFlow free the traced graphs of models that are gone.

    Every ``tf.custom_gradient`` traced in a graph (``tf.distribute``'s ``all_reduce``,
    which every Keras training step calls) registers its gradient function in TensorFlow's
    global gradient registry under a fresh name, and nothing ever removes it. Its closure
    holds tensors of the traced training step, so every training step a process ever traced
    stays alive: 5 to 13 MB per trial here, the growth reported in
    tensorflow/tensorflow#61791. Call this only where no earlier model is used again,
    before ``clear_session`` for the next model.
    """
    import keras

    if keras.backend.backend() != "tensorflow":  # the leak is TensorFlow's
        return
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):  # another TensorFlow: nothing to release
        return
    for name in [name for name in registry if name.startswith(CUSTOM_GRADIENT)]:
        del registry[name]
