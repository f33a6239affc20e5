import peewee
from playhouse.postgres_ext import ArrayField, BinaryJSONField, DateTimeTZField

from models.base import BaseModel
from models.channel import Channel
from models.contact import Contact
from models.schema import Columns
from models.user import User

HISTORY_SIZE = 25


class Msg(BaseModel):
    """A message of RapidPro's. Columns of either generation are mapped; a query selects only
    those the database has (models/schema.py)."""

    uuid = peewee.UUIDField(unique=True)
    org_id = peewee.IntegerField()
    channel = peewee.ForeignKeyField(Channel, column_name="channel_id", null=True, lazy_load=False)
    contact = peewee.ForeignKeyField(Contact, column_name="contact_id", lazy_load=False)
    broadcast_id = peewee.IntegerField(null=True)
    flow_id = peewee.IntegerField(null=True)
    ticket_id = peewee.IntegerField(null=True)  # until RapidPro v26.1.10
    ticket_uuid = peewee.UUIDField(null=True)  # from v10.3.73
    created_by = peewee.ForeignKeyField(User, column_name="created_by_id", null=True, lazy_load=False)
    text = peewee.TextField()
    attachments = ArrayField(peewee.CharField, null=True)
    quick_replies = ArrayField(peewee.CharField, null=True)  # until v26.1.22
    quickreplies = BinaryJSONField(null=True)  # from v26.1.18: [{"type", "text"?, "extra"?}, ...]
    created_on = DateTimeTZField()
    msg_type = peewee.CharField()
    direction = peewee.CharField()
    status = peewee.CharField()
    visibility = peewee.CharField()

    class Meta:
        table_name = "msgs_msg"

    @property
    def origin(self) -> str:
        if self.flow_id:
            return "flow"
        if self.broadcast_id:
            return "broadcast"
        if self.ticket_id or self.ticket_uuid:
            return "ticket"
        return "chat"

    @property
    def quick_reply_texts(self) -> list[str]:
        """What the widget shows as quick replies: the text of each text-type one. From `quickreplies`
        when set; else from the old array, whose items are `text`, `text\\nextra` (until v26.1.15),
        `text<extra>extra` or `<location>text` (a location request, which is no text reply)."""
        if self.quickreplies is not None:
            return [
                reply["text"]
                for reply in self.quickreplies
                if isinstance(reply, dict) and reply.get("type") == "text" and reply.get("text")
            ]
        return [
            item.split("\n", 1)[0].split("<extra>", 1)[0]
            for item in self.quick_replies or ()
            if not item.startswith("<location>")
        ]

    @classmethod
    def history(cls, schema: Columns, org_id: int, channel_id: int, contact_id: int, before, limit: int = HISTORY_SIZE):
        """The contact's visible text messages on this channel created strictly before `before`, newest
        first; `created_by` is set only for a user this org's widgets may show (User.shown_in)."""
        columns = [field for field in cls._meta.sorted_fields if schema.has("msgs_msg", field.column_name)]
        return list(
            cls.select(*columns, User)
            .join(User, peewee.JOIN.LEFT_OUTER, on=(cls.created_by == User.id) & User.shown_in(org_id))
            .where(
                (cls.contact == contact_id)
                & (cls.channel == channel_id)
                & (cls.created_on < before)
                & (cls.msg_type == "T")
                & (cls.visibility.in_(["V", "A"]))
            )
            .order_by(cls.created_on.desc(), cls.id.desc())
            .limit(limit)
        )
