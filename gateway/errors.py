"""The gateway's exceptions.

* GatewayError
  + ConfigError     one mistake in one configuration file, with its place
  + ConfigErrors    every mistake of one load or compile, collected (raised, never partial)
  + UpstreamError   an upstream call failed (mapped to 502/504 at the edge)
    - UpstreamTimeout
    - UpstreamTooLarge

Configuration mistakes are found at load or compile time and never surface as a 500.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "GatewayError",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamTooLarge",
]


class GatewayError(Exception):
    """Base of every exception the gateway raises on purpose."""


class ConfigError(GatewayError):
    """One configuration mistake: ``routes.d/x.yaml:14:16: message - at `$.routes[0].timeout```.

    ``line`` and ``column`` are 1-based; 0 means the place is the whole file.
    """

    def __init__(self, file: str, line: int, column: int, message: str, path: str = "$") -> None:
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        suffix = f" - at `{self.path}`" if self.path and self.path != "$" else ""
        return f"{where}: {self.message}{suffix}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.message)

    def summary(self) -> str:
        """Place and kind of the mistake, none of its values: the message up to the first
        quote or colon (values are quoted), e.g. ``a.yaml:4:21: Invalid value - at `$.x```."""
        kind = self.message
        for stop in (":", "'", '"', "`", " got "):
            kind = kind.split(stop, 1)[0]
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        suffix = f" - at `{self.path}`" if self.path and self.path != "$" else ""
        return f"{where}: {kind.strip() or 'invalid'}{suffix}"

    def redacted(self, values: Iterable[str]) -> ConfigError:
        """The same mistake with every one of ``values`` in its message shown as `***`."""
        message = self.message
        for value in values:
            if value in message:
                message = message.replace(value, "***")
        return ConfigError(self.file, self.line, self.column, message, self.path)


class ConfigErrors(GatewayError):
    """Every mistake found in one load or compile, sorted by file and place."""

    def __init__(self, errors: list[ConfigError]) -> None:
        unique = {str(error): error for error in errors}
        self.errors = sorted(unique.values(), key=ConfigError.sort_key)
        super().__init__("\n".join(str(error) for error in self.errors))


class UpstreamError(GatewayError):
    """An upstream could not be reached or answered in a way the route refuses."""

    def __init__(self, upstream: str, detail: str, status: int | None = None) -> None:
        self.upstream = upstream
        self.detail = detail
        self.status = status
        super().__init__(f'upstream "{upstream}" {detail}')


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the route's timeout."""


class UpstreamTooLarge(UpstreamError):
    """The upstream's answer is larger than its `max_answer_bytes` (the read stopped)."""
