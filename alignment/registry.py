"""Which three steps a run uses: the library's defaults, or the classes the configuration names.

The defaults are ``MergeOrRebaseIntegrator``, ``ChangeErrorDetector`` and ``MarkdownDocGenerator``; the
configuration can name others by dotted path (``integration_utility: "mypackage.steps:MyIntegrator"``), each
a class or factory called with the ``Settings`` and checked against its protocol in ``components``. A module
of its own, above the steps, because it imports them and they import ``components``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from alignment.components import DocGenerator, ErrorDetector, IntegrationUtility
from alignment.config import Settings
from alignment.detect import ChangeErrorDetector
from alignment.document import MarkdownDocGenerator
from alignment.errors import ConfigError
from alignment.integrate import MergeOrRebaseIntegrator

P = TypeVar("P")


@dataclass(frozen=True)
class Components:
    """The three steps a run uses."""

    integration_utility: IntegrationUtility
    error_detector: ErrorDetector
    doc_generator: DocGenerator

    @classmethod
    def from_settings(cls, settings: Settings) -> Components:
        """The library's defaults, or the classes the configuration names by dotted path."""
        return cls(
            integration_utility=_component(
                settings, "integration_utility", IntegrationUtility, MergeOrRebaseIntegrator
            ),
            error_detector=_component(settings, "error_detector", ErrorDetector, ChangeErrorDetector),
            doc_generator=_component(settings, "doc_generator", DocGenerator, MarkdownDocGenerator),
        )


def _component(settings: Settings, key: str, protocol: Any, default: Callable[[Settings], P]) -> P:
    """The component ``key`` names (a class or factory taking the settings), checked against ``protocol``."""
    dotted = getattr(settings, key)
    if dotted is None:
        return default(settings)
    module_name, _, attribute = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    where = f"orchestration.{key}"
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError("configuration", where, f"cannot load {dotted!r}: {exc}") from None
    try:
        component: P = factory(settings)
    except Exception as exc:  # the user's code: whatever it raises is a problem of the configuration
        raise ConfigError("configuration", where, f"{dotted!r}: calling it with the settings raised {exc!r}") from None
    if not isinstance(component, protocol):
        raise ConfigError("configuration", where, f"{dotted!r} does not provide {protocol.__name__}'s method")
    return component
