import peewee
from playhouse.postgres_ext import ArrayField, DateTimeTZField

from models.base import BaseModel
from models.channel import Channel
from models.contact import Contact
from models.user import User

HISTORY_SIZE = 25


class Msg(BaseModel):
    uuid = peewee.UUIDField(unique=True)
    channel = peewee.ForeignKeyField(Channel, column_name="channel_id", null=True, lazy_load=False)
    contact = peewee.ForeignKeyField(Contact, column_name="contact_id", lazy_load=False)
    broadcast_id = peewee.IntegerField(null=True)
    flow_id = peewee.IntegerField(null=True)
    ticket_id = peewee.IntegerField(null=True)
    created_by = peewee.ForeignKeyField(User, column_name="created_by_id", null=True, lazy_load=False)
    text = peewee.TextField()
    attachments = ArrayField(peewee.CharField, null=True)
    quick_replies = ArrayField(peewee.CharField, null=True)
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
        if self.ticket_id:
            return "ticket"
        return "chat"

    @classmethod
    def history(cls, contact_id: int, before, limit: int = HISTORY_SIZE):
        """The contact's visible text messages created strictly before `before`, newest first."""
        return list(
            cls.select(cls, User)
            .join(User, peewee.JOIN.LEFT_OUTER, on=(cls.created_by == User.id))
            .where(
                (cls.contact == contact_id)
                & (cls.created_on < before)
                & (cls.msg_type == "T")
                & (cls.visibility.in_(["V", "A"]))
            )
            .order_by(cls.created_on.desc(), cls.id.desc())
            .limit(limit)
        )
