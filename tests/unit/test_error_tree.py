"""One exception tree: every error ESR raises for a user to act on derives from EsrError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import esr

# Signals caught where they are raised, never shown to a user as an error of their own making:
NOT_USER_ERRORS = {
    "esr.cli.stop_signals.Interrupted",  # Ctrl-C or SIGTERM, turned into an abort
    "esr.replay.formats._common.Unreadable",  # a reader's "not my format", turned into a bad line
    "esr.replay.formats._common.BadTimeOfDay",  # a time field out of range, turned into a bad line
}


def _exception_classes() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(esr.__path__, "esr."):
        if info.name.startswith("esr.sandbox"):  # the sample system under test raises its own
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name
                    and not name.startswith("_")):
                found[f"{info.name}.{name}"] = value
    return found


def test_every_public_exception_is_an_esr_error() -> None:
    classes = _exception_classes()
    assert "esr.api.runs.UnknownRun" in classes and "esr.settings.SettingsError" in classes
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, esr.EsrError))
    assert outside == sorted(NOT_USER_ERRORS)


def test_the_tree_in_the_docstring_names_every_error() -> None:
    from esr.core import errors

    named = {name.rsplit(".", 1)[1] for name, cls in _exception_classes().items() if issubclass(cls, esr.EsrError)}
    missing = sorted(n for n in named - {"EsrError"} if n not in (errors.__doc__ or ""))
    assert missing == []
