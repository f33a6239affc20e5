import uuid

import peewee
from playhouse.postgres_ext import BinaryJSONField

from models.base import BaseModel
from models.org import Org


class Channel(BaseModel):
    """A CHP channel: one webchat entry point of an org, with the secret it shares with Courier."""

    uuid = peewee.CharField(unique=True)  # varchar(36) before RapidPro v26.3.27, then uuid: read as text
    org = peewee.ForeignKeyField(Org, column_name="org_id", lazy_load=False)
    is_active = peewee.BooleanField()
    channel_type = peewee.CharField()
    name = peewee.CharField(null=True)
    config = BinaryJSONField()

    class Meta:
        table_name = "channels_channel"

    @property
    def secret(self) -> str:
        return str((self.config or {}).get("secret") or "")

    @classmethod
    def active_chp(cls, channel_uuid: str):
        """The active CHP channel of an active org with this UUID in its canonical form (any case), or None."""
        try:
            normalized = str(uuid.UUID(channel_uuid))
        except ValueError:
            return None
        if normalized != channel_uuid.lower():
            return None
        return (
            cls.select()
            .join(Org)
            .where(
                (cls.uuid == normalized)
                & (cls.channel_type == "CHP")
                & (cls.is_active == True)  # noqa: E712
                & (Org.is_active == True)  # noqa: E712
            )
            .first()
        )

    def __repr__(self):
        return f"<Channel {self.uuid}>"
