"""What a visitor's commands and Courier's outgoing messages do. Knows nothing of sockets or requests."""

import asyncio
import hmac
import logging
import re
import secrets
import string
from datetime import datetime, timezone

import orjson

from models import ContactURN, Database, Msg
from services import events
from services.courier.client import Outcome
from services.courier.queue import CourierQueue
from services.delivery.outbox import Outbox, visitor_email
from services.delivery.push import Delivery
from services.delivery.sessions import Session
from services.errors import ChatNotStarted, Forbidden, InvalidCommand, Unavailable
from services.limits import Limits
from services.lookups import Lookups
from services.metrics import Metrics
from services.store import keys

logger = logging.getLogger(__name__)

CHAT_ID = re.compile(r"[a-zA-Z0-9]{24}")
CHAT_ID_ALPHABET = string.ascii_letters + string.digits


def new_chat_id() -> str:
    return "".join(secrets.choice(CHAT_ID_ALPHABET) for _ in range(24))


class Chats:
    def __init__(
        self,
        db: Database,
        lookups: Lookups,
        outbox: Outbox,
        delivery: Delivery,
        courier: CourierQueue,
        limits: Limits,
        storage_url: str,
        metrics: Metrics,
    ):
        self.db = db
        self.metrics = metrics
        self.lookups = lookups
        self.outbox = outbox
        self.delivery = delivery
        self.courier = courier
        self.limits = limits
        self.storage_url = storage_url

    # widget commands: each takes the socket's session and the validated fields

    async def start_chat(self, session: Session, chat_id: str = None) -> dict:
        """`start_chat` {chat_id?} -> `chat_resumed` {chat_id, email} for a chat of this channel's org
        whose contact may chat; `error` forbidden for a blocked contact's; else a new chat: Courier is
        told `chat_started`, then -> `chat_started` {chat_id}. A stopped or deleted contact's chat
        starts anew (RapidPro ends their conversation; the visitor chose to come back).

        bind() only sends the subscription; pushing starts on a later turn of the loop, so the
        reply, written as soon as this returns, always precedes the chat's first chat_out."""
        if session.bound:
            email = await visitor_email(self.outbox, self.lookups, session.channel, session.chat_id)
            return events.chat_resumed(session.chat_id, email)
        if chat_id and CHAT_ID.fullmatch(chat_id):
            key = keys.chat_key(session.channel.uuid, chat_id)
            urn, email = await asyncio.gather(
                self.lookups.urn(session.channel.org_id, chat_id), self.outbox.visitor_email(key)
            )
            gone = urn.contact.gone if urn is not None else None
            if gone == "blocked":
                logger.info("refused the chat of a blocked contact channel=%s chat=%s", session.channel.uuid, chat_id)
                raise Forbidden("this chat was blocked")
            if urn is not None and gone is None:
                session.bind(chat_id)
                logger.info("chat resumed channel=%s chat=%s", session.channel.uuid, chat_id)
                await self.delivery.bind(session)
                return events.chat_resumed(chat_id, email or urn.display)
            if gone:
                logger.info(
                    "starting anew: the contact of chat %s is %s channel=%s", chat_id, gone, session.channel.uuid
                )
        await self.limits.count_new_chat(session.channel.uuid, session.remote_ip)
        session.bind(new_chat_id())
        try:
            outcome = await self.courier.deliver(session.key, events.courier_chat_started())
            if outcome is Outcome.REJECTED:
                raise Unavailable("courier refused to start the chat; check the channel's configuration")
        except BaseException:
            session.unbind()  # the chat never started: the widget may send start_chat again
            raise
        logger.info("chat started channel=%s chat=%s courier=%s", session.channel.uuid, session.chat_id, outcome.value)
        await self.delivery.bind(session)
        return events.chat_started(session.chat_id)

    async def send_msg(self, session: Session, text: str):
        """`send_msg` {text} -> no reply; the text is queued for Courier as `msg_in`."""
        self._require_chat(session)
        self.limits.check_text(text)
        await self.courier.send(session.key, events.courier_msg_in(text))
        logger.debug("msg in channel=%s chat=%s length=%d", session.channel.uuid, session.chat_id, len(text))

    async def ack_chat(self, session: Session, msg_id):
        """`ack_chat` {msg_id} -> no reply; the message leaves the outbox, Courier hears `delivered`."""
        self._require_chat(session)
        msg_key = keys.msg_key(msg_id)
        if await self.courier.report(session.key, msg_key, "delivered"):
            self.metrics.acked.inc()
            self.delivery.acked(session.key, msg_key)
            logger.debug("msg acked channel=%s chat=%s msg=%s", session.channel.uuid, session.chat_id, msg_key)

    async def get_history(self, session: Session, before: datetime) -> dict:
        """`get_history` {before} -> `history` with up to 25 of the chat's messages on this channel
        before it, newest first (none once its contact is deleted, blocked or stopped)."""
        self._require_chat(session)
        channel = session.channel
        contact = await self.lookups.contact(channel.org_id, session.chat_id)
        if contact is None or contact.gone:
            return events.history([], self.storage_url)
        rows = await self.db.run(Msg.history, self.db.schema, channel.org_id, channel.id, contact.id, before)
        return events.history(rows, self.storage_url)

    async def set_email(self, session: Session, email: str):
        """`set_email` {email} -> no reply; kept with the chat in Redis, and as the display of the chat's
        URN for RapidPro's UI (until Courier resets it)."""
        self._require_chat(session)
        if not await self.db.run(ContactURN.set_email, session.channel.org_id, session.chat_id, email):
            raise Unavailable("the chat's contact does not exist yet; try again shortly")
        await self.outbox.keep_visitor_email(session.key, email)
        logger.info("email set channel=%s chat=%s", session.channel.uuid, session.chat_id)

    @staticmethod
    def _require_chat(session: Session):
        if not session.bound:
            raise ChatNotStarted("send start_chat first")

    # Courier's outgoing messages

    async def queue_msg_out(self, channel, chat_id: str, secret: str, msg: dict) -> bool:
        """Queue a message from Courier's /wc/send for the chat; True if new, False if a repeat.

        Raises InvalidCommand for a wrong secret, an unknown chat (or one whose contact is gone) or an
        unknown user, TooLarge when the chat's outbox is full (--max-outbox); a user this org may not
        show is left out. The chat and the user are looked up before the secret decides, so that a
        wrong secret takes as long to refuse as a right one and the time of the answer tells nothing
        about the secret."""
        secret_matches = hmac.compare_digest(secret.encode(), channel.secret.encode()) and bool(channel.secret)
        contact = await self.lookups.contact(channel.org_id, chat_id)
        user_id = msg.get("user_id")
        found = await self.lookups.user(channel.org_id, user_id) if user_id else None
        if not secret_matches:
            raise InvalidCommand("secret does not match the channel's")
        if contact is None:
            raise InvalidCommand(f"no such chat: {chat_id}")
        if contact.gone:
            raise InvalidCommand(f"the chat's contact is {contact.gone}: {chat_id}")
        if user_id and found is None:
            raise InvalidCommand(f"no such user: {user_id}")
        user = None
        if found is not None and found.shown:
            user = found.as_json(self.storage_url)
        elif found is not None:
            # never fail a real message over it, but never show another org's user (or a deactivated one)
            logger.warning(
                "msg out shown without its user: user %d is %s channel=%s chat=%s",
                user_id,
                "not active" if not found.is_active else "no member of the channel's org",
                channel.uuid,
                chat_id,
            )
        msg_id = msg.get("uuid") or msg["id"]
        out = events.msg_out(
            msg_id,
            msg["text"],
            msg["origin"],
            datetime.now(timezone.utc),
            user,
            msg.get("attachments"),
            msg.get("quick_replies"),
        )
        key = keys.chat_key(channel.uuid, chat_id)
        added = await self.outbox.queue(
            key, keys.msg_key(msg_id), orjson.dumps(events.chat_out(out)), self.limits.max_outbox
        )
        if added:
            self.metrics.queued.inc()
        logger.debug(
            "msg out queued channel=%s chat=%s msg=%s%s", channel.uuid, chat_id, msg_id, "" if added else " (repeat)"
        )
        return added
