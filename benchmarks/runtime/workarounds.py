"""The list of every private Keras Tuner, Keras or TensorFlow name archbench uses.

The uses themselves live where they are needed: the patches and helpers below, the
distributed search's chief and worker (benchmarks/search/distributed.py,
benchmarks/run/workers.py), the tuner's override (benchmarks/search/tuning.py) and the fused
optimizer (benchmarks/training/optimizers.py); ``PRIVATE_NAMES`` lists each of them, with
why and the versions it was written for. ``missing()`` lists the ones the installed
versions lack, and tests/runtime/test_workarounds.py fails loudly on any, and on a private
name a module of benchmarks/ uses without an entry here. Patches are applied by
``install()``, called explicitly when a tuner is made, never as a side effect of importing
a module.
"""

from __future__ import annotations

import importlib
import inspect
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
    set_by: str = ""  # an instance attribute: the method (dotted below the module) setting it


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
    PrivateName("keras_tuner.src.protos", "get_proto", KERAS_TUNER,
                "the STOPPED status by which the chief notes the workers it told to stop"),
    PrivateName("tensorflow.python.framework.ops", "_gradient_registry._registry", TENSORFLOW,
                "registrations of traced tf.custom_gradient functions dropped between models "
                "(tensorflow/tensorflow#61791: otherwise every traced training step stays alive)"),
    PrivateName("keras.src.utils.module_utils", "tensorflow._available", KERAS,
                "set false on jax: Keras would import TensorFlow, where installed, to seed it "
                "and to check types while saving (its start-up time and its log lines)"),
    # benchmarks/training/optimizers.py: the fused Adam (tests/training/test_optimizers.py
    # checks it trains as Keras' does)
    PrivateName("keras.src.backend.tensorflow.optimizer", "TFOptimizer._backend_update_step",
                KERAS, "overridden: every weight's Adam update in one fused kernel"),
    PrivateName("keras.src.backend.tensorflow.optimizer", "TFOptimizer._apply_weight_decay",
                KERAS, "overridden: AdamW's decay with the learning rate evaluated once a step"),
    PrivateName("keras.src.optimizers.base_optimizer", "BaseOptimizer._get_variable_index",
                KERAS, "a weight's slot variables, for the fused update"),
    PrivateName("keras.src.optimizers.base_optimizer", "BaseOptimizer._use_weight_decay",
                KERAS, "which weights AdamW decays (Keras' exclusions kept)"),
    PrivateName("keras.src.optimizers.adam", "Adam._momentums", KERAS,
                "Adam's first-moment slot variables, updated in place by the fused kernel",
                set_by="Adam.build"),
    PrivateName("keras.src.optimizers.adam", "Adam._velocities", KERAS,
                "Adam's second-moment slot variables, updated in place by the fused kernel",
                set_by="Adam.build"),
]


def missing() -> list[str]:
    """The private names the installed versions lack, each with what it was written for
    (an instance attribute: where the method named to set it does not)."""
    absent = []
    for name in PRIVATE_NAMES:
        try:
            value = importlib.import_module(name.module)
            for part in (name.set_by or name.attribute).split("."):
                value = getattr(value, part)
            if name.set_by and f"self.{name.attribute.split('.')[-1]}" not in (
                    inspect.getsource(value)):
                raise AttributeError(name.attribute)  # the method does not set it
        except (ImportError, AttributeError, OSError, TypeError):
            absent.append(f"{name.module}.{name.attribute} (written for {name.written_for})")
    return absent


def install() -> None:
    """Apply the patches; calling it again changes nothing."""
    from keras_tuner.src import utils as kt_utils

    if not getattr(kt_utils.save_json, "_archbench_atomic", False):
        kt_utils.save_json = _atomic_save_json(kt_utils.save_json)


def keep_tensorflow_out() -> None:
    """After this, on a backend other than TensorFlow, Keras does not import TensorFlow where
    it is installed (``keras.utils.set_random_seed`` to seed it too, saving a model to check for
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
    stays alive: the growth reported in tensorflow/tensorflow#61791. Call this only where no
    earlier model is used again, before ``clear_session`` for the next model.
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
