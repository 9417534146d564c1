"""Candidate CNN architectures: each module registers builders with ``@register``.

An architecture is ``build(hp, input_shape, num_classes) -> keras.Model``: it returns an
uncompiled model, and every ``hp.*`` call has a default. Training logic lives elsewhere.
"""

from models.registry import (
    Architecture,
    RegistryError,
    broken_modules,
    get_architecture,
    list_architectures,
    register,
    resolve,
)

__all__ = [
    "Architecture",
    "RegistryError",
    "broken_modules",
    "get_architecture",
    "list_architectures",
    "register",
    "resolve",
]
