"""One registry of drift tests, looked up by name."""

from __future__ import annotations

from driftline.detectors.base import StatTest

_REGISTRY: dict[str, StatTest] = {}
_BUILTIN_PACKAGE = "driftline.detectors.stattests"


def register(test: StatTest) -> StatTest:
    """Add a test under its name; a name already taken (a built-in's above all) is an error, never a replacement.

    The built-ins are loaded first, so a custom test registered before any
    lookup still cannot take a built-in's name.
    """
    _load_builtin()
    if test.name in _REGISTRY:
        kind = "a built-in" if _is_builtin(_REGISTRY[test.name]) else "another"
        raise ValueError(f"a drift test named {test.name!r} is already registered ({kind}); choose another name")
    _REGISTRY[test.name] = test
    return test


def _is_builtin(test: StatTest) -> bool:
    return str(getattr(test.compute, "__module__", "")).startswith(_BUILTIN_PACKAGE + ".")


def get_test(name: str) -> StatTest:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown drift test {name!r}; valid names: {', '.join(sorted(_REGISTRY))}") from None


def available_tests() -> dict[str, StatTest]:
    _load_builtin()
    return dict(_REGISTRY)


def available_test_names() -> list[str]:
    """Sorted names of every registered test (the built-ins and any custom ones)."""
    return sorted(available_tests())


def _load_builtin() -> None:
    # Importing the package registers every built-in test module once; while it is being imported
    # (a built-in registering itself) this import is a no-op.
    import driftline.detectors.stattests  # noqa: F401
