"""Errors the orchestrator raises for the person at the keyboard to act on.

    EnvfarmError                  (sandbox.errors: the root)
    ├── InfraError / TaskError    (sandbox.errors)
    └── ConfigError               the command's inputs are wrong: fix them and run again
        └── PreflightError        a check before the run failed; no run was created

A `ConfigError` carries what is wrong and how to fix it; the CLI prints it as one line,
`error: <what>; <fix>`, and exits non-zero. It is a `ValueError` too, so library callers
that catch `ValueError` for bad arguments keep working.
"""

from __future__ import annotations

from sandbox.errors import EnvfarmError


class ConfigError(EnvfarmError, ValueError):
    """A user input is wrong (a flag, a file, a run id). Not retried: nothing will change
    until the user changes it."""

    def __init__(self, what: str, fix: str = "") -> None:
        self.what, self.fix = what, fix
        super().__init__(f"{what}; {fix}" if fix else what)


class PreflightError(ConfigError):
    """A check made before a run is created failed (engine down, model server silent,
    unknown task, bad env argument). Nothing was stored."""


class RunFailed(EnvfarmError):
    """Every episode of a run failed (infra_error or task_error); the message sums up the
    causes. The episodes are stored; the run can be resumed once the cause is fixed."""
