"""The architecture registry: a name -> builder map filled by the ``@register`` decorator."""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Builder = Callable[..., Any]  # build(hp, input_shape, num_classes) -> keras.Model


class RegistryError(ValueError):
    """An architecture name is unknown, duplicated or otherwise unusable."""


class NotApplicable(ValueError):
    """Raised by a builder for an input it is not made for (e.g. too small for its poolings):
    the benchmark lists the architecture as not applicable, with this message, not as failed."""


@dataclass(frozen=True)
class Architecture:
    """One registered architecture: its builder and what the registry knows of it."""

    name: str
    build: Builder
    family: str
    module: str

    @property
    def description(self) -> str:
        """The first line of the builder's docstring."""
        doc = (self.build.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, Architecture] = {}
# Architecture modules that failed to import: module name -> error message.
_BROKEN_MODULES: dict[str, str] = {}
_DISCOVERED = False


def register(func: Builder | None = None, *, name: str | None = None, family: str | None = None):
    """Register an architecture builder; usable as ``@register`` or ``@register(name=...)``.

    Args:
        func: ``build(hp, input_shape, num_classes) -> keras.Model`` (uncompiled).
        name: registry name; defaults to the function's name.
        family: family shown by ``archbench models``; defaults to the module's name.

    Raises:
        RegistryError: the name is already registered.
    """

    def decorator(fn: Builder) -> Builder:
        arch_name = name or fn.__name__
        if arch_name in _REGISTRY:
            other = _REGISTRY[arch_name].module
            raise RegistryError(
                f"architecture {arch_name!r} is registered twice (in {other} and {fn.__module__})"
            )
        module = fn.__module__ or "__main__"
        _REGISTRY[arch_name] = Architecture(
            name=arch_name,
            build=fn,
            family=family or module.rsplit(".", 1)[-1],
            module=module,
        )
        return fn

    return decorator(func) if func is not None else decorator


def discover(package: str = "models") -> dict[str, str]:
    """Import every module of ``package`` once so that their ``@register`` calls run.

    A module that fails to import is recorded, not raised, so that one broken file does not
    hide the other architectures.

    Returns:
        module name -> error message for every module that failed to import.
    """
    global _DISCOVERED
    if _DISCOVERED:
        return dict(_BROKEN_MODULES)
    _DISCOVERED = True
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "registry":
            continue
        full_name = f"{package}.{info.name}"
        if full_name in sys.modules:
            continue
        try:
            importlib.import_module(full_name)
        except Exception as exc:  # noqa: BLE001 - any error in a user's file is reported
            _BROKEN_MODULES[full_name] = f"{type(exc).__name__}: {exc}"
    return dict(_BROKEN_MODULES)


def broken_modules() -> dict[str, str]:
    """Architecture modules that failed to import, with their errors."""
    discover()
    return dict(_BROKEN_MODULES)


def list_architectures(pattern: str | list[str] | None = None) -> list[str]:
    """Sorted registry names matching one or more shell-style wildcards (``res*``)."""
    discover()
    patterns = [pattern] if isinstance(pattern, str) else (pattern or ["*"])
    return sorted(n for n in _REGISTRY if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name``.

    Raises:
        RegistryError: no such architecture; the message suggests close matches.
    """
    discover()
    if name in _REGISTRY:
        return _REGISTRY[name]
    message = f"unknown architecture {name!r}"
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    if close:
        message += f"; did you mean {', '.join(close)}?"
    else:
        message += f"; known: {', '.join(sorted(_REGISTRY))}"
    if _BROKEN_MODULES:
        message += f" (modules that failed to import: {', '.join(sorted(_BROKEN_MODULES))})"
    raise RegistryError(message)


def resolve(selection: list[str] | None) -> list[str]:
    """Expand names and wildcards into registry names, keeping first-seen order.

    Raises:
        RegistryError: a plain name is unknown or a wildcard matches nothing.
    """
    names: list[str] = []
    for item in selection or ["*"]:
        if any(ch in item for ch in "*?["):
            matched = list_architectures(item)
            if not matched:
                raise RegistryError(f"pattern {item!r} matches no architecture")
        else:
            matched = [get_architecture(item).name]
        names.extend(n for n in matched if n not in names)
    return names


def snapshot() -> tuple[dict[str, Architecture], dict[str, str], bool]:
    """The registry's state, for tests that register throw-away architectures."""
    return dict(_REGISTRY), dict(_BROKEN_MODULES), _DISCOVERED


def restore(state: tuple[dict[str, Architecture], dict[str, str], bool]) -> None:
    """Put back a state taken with :func:`snapshot`."""
    global _DISCOVERED
    registry, broken, discovered = state
    _REGISTRY.clear()
    _REGISTRY.update(registry)
    _BROKEN_MODULES.clear()
    _BROKEN_MODULES.update(broken)
    _DISCOVERED = discovered
