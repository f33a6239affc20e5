"""What every handler shares: typed access to the services, and the one place that turns an
exception into a client's answer (a JSON error body, or an `error` event on a socket)."""

import http.client
import logging
from typing import Generic, TypeVar

import orjson
from tornado.web import HTTPError, RequestHandler

from models import DatabaseUnavailable
from services.chats import Chats
from services.config import Config
from services.delivery.keepalive import Keepalive
from services.delivery.push import Delivery
from services.delivery.sessions import Registry
from services.errors import ChipError, NotFound, Unavailable
from services.limits import Limits
from services.lookups import Lookups
from services.readiness import Readiness

logger = logging.getLogger(__name__)

T = TypeVar("T")


def refusal(exc: BaseException) -> ChipError:
    """The ChipError to show for any exception; anything unexpected is logged with its traceback
    here and shown only as 'internal error'."""
    if isinstance(exc, ChipError):
        return exc
    if isinstance(exc, DatabaseUnavailable):  # logged where it failed (models/base.py)
        return Unavailable(str(exc))
    if isinstance(exc, HTTPError):
        error = ChipError(exc.reason or "request refused")
        error.status = exc.status_code
        return error
    logger.error("internal error", exc_info=exc)
    return Unavailable("internal error")


def _reason(status: int, exc: BaseException | None, given: str | None) -> str:
    """The reason phrase send_error answered with (Tornado keeps it private): the one it was given, an
    HTTPError's own, else the standard one for the status."""
    if isinstance(exc, HTTPError) and exc.reason:
        return exc.reason
    return given or http.client.responses.get(status, "Unknown")


class Service(Generic[T]):
    """A handler's attribute that is the service of the same name, built once in chip.py and given
    to the Application in its settings."""

    def __set_name__(self, owner, name: str):
        self.name = name

    def __get__(self, handler, owner=None) -> T:
        return self if handler is None else handler.settings[self.name]


class ServicesMixin:
    """The services built once in chip.py, reached through the Application's settings."""

    config = Service[Config]()
    chats = Service[Chats]()
    lookups = Service[Lookups]()
    delivery = Service[Delivery]()
    registry = Service[Registry]()
    limits = Service[Limits]()
    readiness = Service[Readiness]()
    keepalive = Service[Keepalive]()

    def set_default_headers(self):
        # Tornado's default names itself and its version to anyone: say nothing
        self.clear_header("Server")

    def write_json(self, body: dict, status: int = 200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        error = refusal(exc) if exc is not None else None
        if error is None:
            self.write_json({"error": _reason(status_code, exc, kwargs.get("reason")).lower()}, status_code)
        else:
            self.write_json({"error": error.message}, error.status)

    def log_exception(self, typ, value, tb):
        if not isinstance(value, (ChipError, DatabaseUnavailable, HTTPError)):
            super().log_exception(typ, value, tb)


class JSONHandler(ServicesMixin, RequestHandler):
    """A plain HTTP request, counted in flight until answered so that a graceful stop lets it finish."""

    _counted = False

    def prepare(self):
        self.readiness.begin()
        self._counted = True

    def on_finish(self):
        self._uncount()

    def on_connection_close(self):
        # a request whose client left, or whose body never came (--body-timeout), is never finished
        super().on_connection_close()
        self._uncount()

    def _uncount(self):
        if self._counted:
            self._counted = False
            self.readiness.end()


class NotFoundHandler(JSONHandler):
    def prepare(self):
        super().prepare()
        raise NotFound("no such endpoint")
