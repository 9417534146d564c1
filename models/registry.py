"""The architecture registry: a name -> builder map filled by the ``@register`` decorator."""

from __future__ import annotations

import ast
import difflib
import fnmatch
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
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
    return _matching(pattern, _REGISTRY)


def _matching(pattern: str | list[str] | None, known: Iterable[str]) -> list[str]:
    patterns = [pattern] if isinstance(pattern, str) else (pattern or ["*"])
    return sorted(n for n in known if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name``.

    Raises:
        RegistryError: no such architecture; the message suggests close matches.
    """
    discover()
    if name in _REGISTRY:
        return _REGISTRY[name]
    raise _unknown(name, _REGISTRY)


def _unknown(name: str, known: Iterable[str]) -> RegistryError:
    known = sorted(known)
    message = f"unknown architecture {name!r}"
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        message += f"; did you mean {', '.join(close)}?"
    else:
        message += f"; known: {', '.join(known)}"
    if _BROKEN_MODULES:
        message += f" (modules that failed to import: {', '.join(sorted(_BROKEN_MODULES))})"
    return RegistryError(message)


def resolve(selection: list[str] | None, known: Iterable[str] | None = None) -> list[str]:
    """Expand names and wildcards into registry names, keeping first-seen order.

    Args:
        selection: names and wildcards; None or empty means every architecture.
        known: the names to match against; default: the registry, every architecture
            module imported. :func:`declared_names` gives them without importing.

    Raises:
        RegistryError: a plain name is unknown or a wildcard matches nothing.
    """
    if known is None:
        discover()
        known = _REGISTRY
    known = set(known)
    names: list[str] = []
    for item in selection or ["*"]:
        if any(ch in item for ch in "*?["):
            matched = _matching(item, known)
            if not matched:
                raise RegistryError(f"pattern {item!r} matches no architecture")
        elif item in known:
            matched = [item]
        else:
            raise _unknown(item, known)
        names.extend(n for n in matched if n not in names)
    return names


def declared_names(package: str = "models") -> set[str] | None:
    """The architecture names that ``package``'s files register, read from their source
    without importing them (and so without loading Keras or TensorFlow), together with
    those already registered.

    Returns:
        The names, or None when a file registers in a way the source does not show (a
        ``register`` call that is not a decorator with literal arguments): then only an
        import can tell, and :func:`resolve` should be given no ``known``.
    """
    if _DISCOVERED:
        return set(_REGISTRY)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    names = set(_REGISTRY)
    for info in pkgutil.iter_modules(spec.submodule_search_locations):
        if info.name.startswith("_") or info.name == "registry":
            continue
        path = Path(getattr(info.module_finder, "path", "")) / f"{info.name}.py"
        if info.ispkg or not path.is_file():
            return None  # a package or a compiled module: only its import tells
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (OSError, SyntaxError, ValueError):
            continue  # a broken file: its import fails and is reported then
        found = _registered_in(tree)
        if found is None:
            return None
        names |= found
    return names


def _registered_in(tree: ast.Module) -> set[str] | None:
    """The names a module's ``@register`` decorators give, or None if it uses ``register``
    in any other way."""
    names: set[str] = set()
    decorators = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if _is_register(decorator):
                    names.add(node.name)
                    decorators.add(id(decorator))
                elif isinstance(decorator, ast.Call) and _is_register(decorator.func):
                    keywords = {k.arg: k.value for k in decorator.keywords}
                    if decorator.args or None in keywords or not all(
                            isinstance(v, ast.Constant) for v in keywords.values()):
                        return None
                    names.add(keywords["name"].value if "name" in keywords else node.name)
                    decorators.update((id(decorator), id(decorator.func)))
    for node in ast.walk(tree):
        if _is_register(node) and id(node) not in decorators:
            return None  # register(...) called, aliased or passed around
    return names


def _is_register(node: ast.AST) -> bool:
    return ((isinstance(node, ast.Name) and node.id == "register")
            or (isinstance(node, ast.Attribute) and node.attr == "register"))


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
