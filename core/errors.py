"""The one error hierarchy: every error a user can cause is a ForgeError with a message that says the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ForgeError(Exception):
    """An error a user can cause and fix; the CLI prints its message in one line and exits 2."""

    exit_code = 2


class ConfigError(ForgeError):
    """plugins.toml or another configuration value is malformed or names something unknown."""


class WorkspaceError(ForgeError):
    """No workspace was found, or the workspace on disk is unusable."""


class PluginError(ForgeError):
    """A plugin is missing, failed to load, or broke its contract."""


class StorageError(ForgeError):
    """A store failed: a database error, a corrupt object, a schema from a newer forgeml.

    ``transient`` says the store could not write now (locked, full, read-only, I/O) rather than that
    the rows were wrong: writers keep such rows and retry. A store sets it False only when it knows
    the rows themselves were refused (a constraint, an out-of-range value), so they can be set aside.
    """

    def __init__(self, message: str, *, transient: bool = True):
        super().__init__(message)
        self.transient = transient


class ConflictError(StorageError):
    """A write broke a unique or foreign-key rule of the metadata store."""


class CorruptObjectError(StorageError):
    """An artifact's bytes no longer match its content address."""


class NotFoundError(ForgeError):
    """A named thing (run, job, model, feature, artifact) does not exist."""


class ValidationError(ForgeError):
    """A spec, schema or value failed validation."""


class QuerySyntaxError(ValidationError):
    """A query string could not be parsed; the message points at the column."""


class TooLargeError(ValidationError):
    """A request carries more rows or bytes than the server's limit for it."""


class JobError(ForgeError):
    """A job could not be submitted, placed, or controlled."""


class GateFailedError(ForgeError):
    """A promotion was refused because one or more gates failed."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str], where: str = "") -> ForgeError:
    """Build the standard 'unknown X' error listing the choices and the closest one."""
    options = sorted(choices)
    listed = ", ".join(options) if options else "none are available"
    prefix = f"{where}: " if where else ""
    return NotFoundError(f"{prefix}unknown {kind} {name!r}{did_you_mean(name, options)}; choices: {listed}")


class DataValidationError(ValidationError):
    """A dataset failed its expectation suite; the message lists every failing expectation."""

    def __init__(self, message: str, report: object = None):
        super().__init__(message)
        self.report = report


class PromotionConflictError(ForgeError):
    """Another promotion of the same model committed first; re-read the registry and retry."""


class RemoteError(ForgeError):
    """A remote compute target could not be reached, refused a login, or failed a command."""


class AuthenticationError(ForgeError):
    """A caller gave no credentials, or a token that is unknown, wrong, revoked or expired."""


class PermissionDeniedError(ForgeError):
    """The principal's roles or the token's scopes do not allow the operation."""


class RateLimitedError(ForgeError):
    """A token sent more requests than its rate limit allows; retry after the given seconds."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s
