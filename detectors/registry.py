"""One registry of drift tests, looked up by name."""

from __future__ import annotations

from driftline.detectors.base import StatTest

_REGISTRY: dict[str, StatTest] = {}


def register(test: StatTest) -> StatTest:
    if test.name in _REGISTRY:
        raise ValueError(f"a drift test named {test.name!r} is already registered")
    _REGISTRY[test.name] = test
    return test


def get_test(name: str) -> StatTest:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown drift test {name!r}; valid names: {', '.join(sorted(_REGISTRY))}") from None


def available_tests() -> dict[str, StatTest]:
    _load_builtin()
    return dict(_REGISTRY)


def _load_builtin() -> None:
    # Importing the package registers every built-in test module once.
    import driftline.detectors.stattests  # noqa: F401
