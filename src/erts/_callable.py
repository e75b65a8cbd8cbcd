"""Lets a sub-package double as the API function of the same name (``erts.train``, ``erts.explain``,
``erts.audit``).

Why: importing ``erts.train.loop`` binds ``erts.train`` to the package, which would hide the
function ``erts.train`` of docs/api.md; a callable package keeps both spellings working.
"""
import sys
import types


def forward_calls(package: str, function: str) -> None:
    """Calls of the module ``package`` go to ``erts.api.<function>`` (imported on first call)."""

    class _CallablePackage(types.ModuleType):
        def __call__(self, *args, **kwargs):
            import erts.api

            return getattr(erts.api, function)(*args, **kwargs)

    sys.modules[package].__class__ = _CallablePackage
