"""The library's exceptions: one base class, one subclass per kind of failure.

Each maps to a process exit code (see `exit_code`), so the CLI and spark-submit runs report
failures the same way: 2 for usage and configuration, 3 for a failed quality gate, 1 otherwise.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_QUALITY_GATE = 3


class EtlError(Exception):
    """Base class of every error the library raises on purpose."""

    exit_code = EXIT_FAILURE


class ConfigError(EtlError):
    """Configuration or command-line input is invalid; raised before Spark starts."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class SourceError(EtlError):
    """A source (file, folder, database, API) could not be read; the message names it."""


class SchemaMismatchError(SourceError):
    """A source's columns do not match the configured schema."""


class WriteError(EtlError):
    """A target table could not be written; the message names the table."""


class QualityGateError(EtlError):
    """An error-severity quality rule failed: nothing was published to the target."""

    exit_code = EXIT_QUALITY_GATE

    def __init__(self, table: str, failures: list[str]):
        self.table = table
        self.failures = list(failures)
        super().__init__(
            f"quality gate failed for {table}: " + "; ".join(self.failures)
        )


def exit_code(exc: BaseException) -> int:
    """The process exit code for an exception that ended a run."""
    if isinstance(exc, EtlError):
        return exc.exit_code
    return EXIT_FAILURE


class StateError(EtlError):
    """Run state (watermarks, staged extracts) is missing, unreadable or cannot be written."""


def jvm_error_text(exc: BaseException) -> str:
    """One line describing a failure from Spark: the JVM exception's own message for a py4j
    error (rather than py4j's "An error occurred while calling o61.load"), else the first line."""
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()) if java is not None else str(exc)
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)


class SchemaPolicyError(WriteError):
    """A batch's schema differs from its table's in a way the target's schema policy refuses;
    raised before writing, so the table is untouched. The message names columns and types."""


class WriteConflictError(WriteError):
    """A write kept conflicting with concurrent commits after its bounded retries; the message
    names the conflict (Delta's exception class)."""


class ApiError(SourceError):
    """A REST API answered with an error, or kept failing after the bounded retries; the message
    names the source, the request (method and URL) and the last status or failure."""


class SecretError(EtlError):
    """A referenced secret (`etl.secrets`) could not be read; the message names the reference,
    never a value."""
