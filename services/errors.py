"""The refusals chip can give. Handlers turn each into an `error` event or a JSON HTTP error."""


class ChipError(Exception):
    """A refusal with a machine-readable code, an HTTP status and a message for a developer."""

    code = "invalid_command"
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidCommand(ChipError):
    code = "invalid_command"


class ChatNotStarted(ChipError):
    code = "chat_not_started"


class NotFound(ChipError):
    code = "not_found"
    status = 404


class Unavailable(ChipError):
    """A store or Courier could not be reached; the client may retry."""

    code = "unavailable"
    status = 503


class RateLimited(ChipError):
    code = "rate_limited"
    status = 429


class TooLarge(ChipError):
    code = "too_large"
    status = 413


class Forbidden(ChipError):
    code = "forbidden"
    status = 403
