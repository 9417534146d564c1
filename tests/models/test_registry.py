"""The registry: decorator, wildcards, unknown and duplicate names, discovery."""

import pytest

from models import registry
from models.registry import (
    RegistryError,
    get_architecture,
    list_architectures,
    register,
    resolve,
)

REQUIRED = {"simple_cnn", "mlp", "vgg", "resnet", "mobilenet", "convmixer"}


def test_every_family_is_discovered_and_none_is_broken():
    assert REQUIRED <= set(list_architectures())
    assert registry.broken_modules() == {}


def test_decorator_uses_function_name_and_keeps_the_function():
    def toy_net(hp, input_shape, num_classes):
        """A toy network.

        More text.
        """

    returned = register(toy_net)
    assert returned is toy_net
    arch = get_architecture("toy_net")
    assert arch.build is toy_net
    assert arch.description == "A toy network."


def test_decorator_with_arguments_sets_name_and_family():
    @register(name="toy-renamed", family="toys")
    def whatever(hp, input_shape, num_classes):
        pass

    assert get_architecture("toy-renamed").family == "toys"
    with pytest.raises(RegistryError):
        get_architecture("whatever")


def test_duplicate_name_raises_and_names_it():
    with pytest.raises(RegistryError, match="'mlp' is registered twice"):

        @register(name="mlp")
        def another(hp, input_shape, num_classes):
            pass


def test_wildcards_filter_names():
    assert list_architectures("res*") == ["resnet"]
    assert list_architectures(["mlp", "v?g"]) == ["mlp", "vgg"]
    assert list_architectures("nothing*") == []


def test_unknown_name_suggests_close_matches():
    with pytest.raises(RegistryError, match=r"unknown architecture 'resnt'.*did you mean resnet"):
        get_architecture("resnt")


def test_resolve_expands_patterns_in_order_without_duplicates():
    assert resolve(["mlp", "res*", "mlp"]) == ["mlp", "resnet"]
    assert set(resolve(None)) >= REQUIRED
    with pytest.raises(RegistryError, match="matches no architecture"):
        resolve(["zzz*"])


def test_broken_module_is_reported_and_others_still_list(tmp_path, monkeypatch):
    package = tmp_path / "fakemodels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(
        "from models.registry import register\n"
        "@register\n"
        "def good_net(hp, input_shape, num_classes):\n    pass\n"
    )
    (package / "bad.py").write_text("import not_a_real_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.restore(({}, {}, False))
    broken = registry.discover("fakemodels")
    assert list(broken) == ["fakemodels.bad"]
    assert "not_a_real_module_xyz" in broken["fakemodels.bad"]
    assert list_architectures() == ["good_net"]


def test_the_names_read_from_the_files_are_the_names_their_import_registers():
    state = registry.snapshot()
    try:
        registry.restore(({}, {}, False))  # as in a fresh process: nothing imported yet
        declared = registry.declared_names()
    finally:
        registry.restore(state)
    assert declared is not None and REQUIRED <= declared
    assert declared == set(list_architectures())


@pytest.mark.parametrize("source,expected", [
    ("@register\ndef net(hp, s, n):\n    pass\n", {"net"}),
    ("@register(name='other', family='toys')\ndef net(hp, s, n):\n    pass\n", {"other"}),
    ("import models.registry\n@models.registry.register(family='x')\ndef net(hp, s, n):\n"
     "    pass\n", {"net"}),
    ("def net(hp, s, n):\n    pass\nregister(net)\n", None),  # only an import can tell
    ("NAME = 'n'\n@register(name=NAME)\ndef net(hp, s, n):\n    pass\n", None),
    ("def (:\n", set()),  # a broken file: its import fails and is reported then
])
def test_names_are_read_from_the_source_or_left_to_the_import(tmp_path, monkeypatch, source,
                                                               expected):
    package = tmp_path / "toymodels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text("from models.registry import register\n" + source)
    (package / "_helpers.py").write_text("register = None\n")  # private: not scanned
    monkeypatch.syspath_prepend(str(tmp_path))
    state = registry.snapshot()
    try:
        registry.restore(({}, {}, False))
        assert registry.declared_names("toymodels") == expected
    finally:
        registry.restore(state)


def test_resolve_against_declared_names_suggests_and_expands_without_importing():
    known = {"resnet", "wide_resnet", "mlp"}
    assert resolve(["*resnet", "mlp"], known) == ["resnet", "wide_resnet", "mlp"]
    with pytest.raises(RegistryError, match="did you mean resnet"):
        resolve(["resnt"], known)
    with pytest.raises(RegistryError, match="matches no architecture"):
        resolve(["vgg*"], known)
