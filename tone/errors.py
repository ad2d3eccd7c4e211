"""One root exception for the project, plus the few that callers act on."""


class ToneError(Exception):
    """Root of every error this project raises on purpose; the CLI prints these without a traceback."""


class ConfigError(ToneError, ValueError):
    """A setting or option has a value outside what is allowed; the message names it and the allowed values.

    Also a ValueError, so validators that raise it keep working where a ValueError is expected.
    """


class ServiceError(ToneError):
    """Redis or Kafka refused this client or cannot be reached; the message says which setting to check."""


class StackError(ToneError):
    """The local stack could not be started, checked or stopped; the message says what to do."""


class ArtifactError(ToneError):
    """A model artifact is missing, corrupt, tampered with or unsafe; it is refused and nothing is loaded."""


class DataLossError(ToneError):
    """Offsets the stream had to read were deleted (retention) or the topic went behind its checkpoint.

    The query fails at once (restarting would not bring them back); the message says what was lost and what to do.
    """
