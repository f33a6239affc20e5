"""Email to visitors, for outgoing messages that waited too long for them to come back."""

import logging
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

logger = logging.getLogger(__name__)


def one_line(text: str) -> str:
    """The text fit for a header: control characters and line breaks (a channel's name may hold
    them) as single spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


class Mailer:
    """Sends through the server of --smtp-url: smtp:// (STARTTLS when offered) or smtps:// (TLS)."""

    def __init__(self, smtp_url: str, timeout: float = 10.0):
        parts = urlsplit(smtp_url)
        self.hostname = parts.hostname or "localhost"
        self.use_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.use_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = parse_qs(parts.query).get("from", [f"chip@{self.hostname}"])[0]
        self.timeout = timeout

    async def send(self, to: str, subject: str, body: str) -> bool:
        """Email `body`; False, with a warning logged, when it cannot be (a bad address included)."""
        try:
            message = EmailMessage()
            message["From"] = self.sender
            message["To"] = to
            message["Subject"] = one_line(subject)
            message.set_content(body)
            await aiosmtplib.send(
                message,
                hostname=self.hostname,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, ValueError) as e:
            logger.warning("could not email %d character(s) to a visitor: %s", len(body), type(e).__name__)
            return False
        return True
