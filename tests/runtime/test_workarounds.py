"""Private Keras Tuner and TensorFlow names: present in the installed versions, patched
only when asked, and doing what archbench relies on."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.runtime import workarounds


def test_every_private_name_archbench_uses_exists_in_the_installed_versions():
    assert workarounds.missing() == [], (
        "a private name moved: update benchmarks/runtime/workarounds.py for the installed version"
    )


def test_a_moved_private_name_is_reported_with_what_it_was_written_for(monkeypatch):
    gone = workarounds.PrivateName("keras_tuner.src.utils", "no_such_function", "keras-tuner 9",
                                   "test")
    monkeypatch.setattr(workarounds, "PRIVATE_NAMES", [*workarounds.PRIVATE_NAMES, gone])
    assert workarounds.missing() == [
        "keras_tuner.src.utils.no_such_function (written for keras-tuner 9)"]


def test_an_instance_attribute_is_missing_when_its_method_no_longer_sets_it(monkeypatch):
    listed = workarounds.PrivateName("keras.src.optimizers.adam", "Adam._momentums", "keras 9",
                                     "test", set_by="Adam.build")
    monkeypatch.setattr(workarounds, "PRIVATE_NAMES", [listed])
    assert workarounds.missing() == []
    unset = workarounds.PrivateName("keras.src.optimizers.adam", "Adam._first_moments",
                                    "keras 9", "test", set_by="Adam.build")
    gone = workarounds.PrivateName("keras.src.optimizers.adam", "Adam._momentums", "keras 9",
                                   "test", set_by="Adam.no_such_method")
    monkeypatch.setattr(workarounds, "PRIVATE_NAMES", [unset, gone])
    assert workarounds.missing() == [
        "keras.src.optimizers.adam.Adam._first_moments (written for keras 9)",
        "keras.src.optimizers.adam.Adam._momentums (written for keras 9)"]


@pytest.fixture
def keras_tuner_save_json():
    from keras_tuner.src import utils as kt_utils

    original = kt_utils.save_json
    yield kt_utils
    kt_utils.save_json = original


def test_keras_tuner_state_is_written_atomically_once_installed(
    tmp_path, monkeypatch, keras_tuner_save_json
):
    kt_utils = keras_tuner_save_json
    workarounds.install()
    patched = kt_utils.save_json
    workarounds.install()
    assert kt_utils.save_json is patched, "installing twice wraps once"

    path = tmp_path / "oracle.json"
    kt_utils.save_json(str(path), {"ongoing_trials": {}})
    assert json.loads(path.read_text()) == {"ongoing_trials": {}}

    def disk_fails(fd):
        raise OSError("disk failed")

    monkeypatch.setattr(os, "fsync", disk_fails)  # a crash half-way through the write
    with pytest.raises(OSError, match="disk failed"):
        kt_utils.save_json(str(path), {"ongoing_trials": {"tuner0": "3"}})
    assert json.loads(path.read_text()) == {"ongoing_trials": {}}, "the old state stays whole"
    assert [p.name for p in tmp_path.iterdir()] == ["oracle.json"], "no temporary file left"


@pytest.mark.slow
def test_importing_archbench_patches_nothing():
    code = ("import benchmarks.run.runner, benchmarks.search.tuning, benchmarks.run.workers\n"
            "from keras_tuner.src import utils\n"
            "print(getattr(utils.save_json, '_archbench_atomic', False))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


LIBRARIES = ("keras_tuner", "keras", "tensorflow")
BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def _is_private(dotted: str) -> bool:
    """A name inside a library's private tree (``keras.src``, ``tensorflow.python``) or a
    name with a leading underscore below a library."""
    parts = dotted.split(".")
    return parts[0] in LIBRARIES and any(
        part in ("src", "python") or (part.startswith("_") and not part.startswith("__"))
        for part in parts[1:])


def _chain(node, bound: dict[str, str]) -> list[str] | None:
    """``a.b.c`` and ``getattr(a.b, "c")`` as ``[<what a is bound to>, "b", "c"]``; None for
    anything else (a call's result, a name not bound to a library)."""
    if isinstance(node, ast.Name):
        return [bound[node.id]] if node.id in bound else None
    if isinstance(node, ast.Attribute):
        inner = _chain(node.value, bound)
        return None if inner is None else [*inner, node.attr]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
        inner = _chain(node.args[0], bound)
        return None if inner is None else [*inner, node.args[1].value]
    return None


def _own_names(tree: ast.AST) -> set[str]:
    """The names a module defines itself: its functions and the attributes it assigns."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
    return own


def private_uses(source: str) -> set[str]:
    """The private library names a module uses: imports from private trees, attributes
    reached from them or from a library with a leading underscore (a name archbench sets
    itself, ``_archbench_*``, ends the chain), and, as ``*._name``, what its classes reach
    of a base class: ``super()._name`` and ``self._name`` where the module defines no
    ``_name``."""
    tree, bound, uses = ast.parse(source), {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]  # what ``import a.b`` binds
                bound[alias.asname or top] = alias.name if alias.asname else top
                uses.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                uses.add(f"{node.module}.{alias.name}")
    own = _own_names(tree)
    for node in ast.walk(tree):
        chain = _chain(node, bound) if isinstance(node, ast.Attribute | ast.Call) else None
        if chain is not None:
            ends = [i for i, part in enumerate(chain) if str(part).startswith("_archbench")]
            uses.add(".".join(chain[:ends[0]] if ends else chain))
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not (
                node.attr.startswith("__")):
            base = node.value
            if (isinstance(base, ast.Call) and isinstance(base.func, ast.Name)
                    and base.func.id == "super") or (
                    isinstance(base, ast.Name) and base.id == "self" and node.attr not in own):
                uses.add(f"*.{node.attr}")
    return {use for use in uses if use.startswith("*.") or _is_private(use)}


def uncovered(uses: set[str], names=None) -> set[str]:
    """The uses no entry of ``PRIVATE_NAMES`` accounts for: an entry's own dotted name, a
    module or object on the way to one, or (``*._name``) an entry's last part."""
    names = workarounds.PRIVATE_NAMES if names is None else names
    full = [f"{name.module}.{name.attribute}" for name in names]
    lasts = {name.attribute.split(".")[-1] for name in names}
    return {use for use in uses if not (
        use[2:] in lasts if use.startswith("*.") else
        any(entry == use or entry.startswith(use + ".") for entry in full))}


def test_the_scan_finds_each_kind_of_private_use():
    source = '''
import tensorflow as tf
import keras_tuner.src.engine
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief as chief
from tensorflow.python.framework import ops

status = protos.get_proto().TrialStatus
chief.OracleServicer.TIMEOUT = getattr(getattr(ops, "_registry", None), "_names", None)
chief._archbench_marked = tf.function(tf._private) and tf.constant(1)

class Fused:
    def _own(self):
        return super()._update(self._slots, self._own, self.public)
'''
    assert private_uses(source) == {
        "keras_tuner.src.engine", "keras_tuner.src.protos", "keras_tuner.src.protos.get_proto",
        "keras_tuner.src.distribute.oracle_chief",  # and each object on the way
        "keras_tuner.src.distribute.oracle_chief.OracleServicer",
        "keras_tuner.src.distribute.oracle_chief.OracleServicer.TIMEOUT",
        "tensorflow.python.framework.ops", "tensorflow.python.framework.ops._registry",
        "tensorflow.python.framework.ops._registry._names",
        "tensorflow._private", "*._update", "*._slots"}
    listed = [workarounds.PrivateName("keras_tuner.src.protos", "get_proto", "", ""),
              workarounds.PrivateName("keras.src.x", "Base._update", "", "")]
    assert uncovered({"keras_tuner.src.protos", "keras_tuner.src.protos.get_proto",
                      "keras_tuner.src.protos.get_service_grpc", "*._update", "*._slots"},
                     listed) == {"keras_tuner.src.protos.get_service_grpc", "*._slots"}


def test_every_private_name_a_module_of_benchmarks_uses_is_listed():
    found = {}
    for path in sorted(BENCHMARKS.rglob("*.py")):
        for use in uncovered(private_uses(path.read_text())):
            found.setdefault(use, []).append(str(path.relative_to(BENCHMARKS.parent)))
    assert found == {}, "list these in PRIVATE_NAMES (benchmarks/runtime/workarounds.py)"
