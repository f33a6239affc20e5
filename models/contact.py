from datetime import datetime, timezone

import peewee
from playhouse.postgres_ext import DateTimeTZField

from models.base import BaseModel
from models.org import Org


class Contact(BaseModel):
    """A visitor, as RapidPro sees them. A deleted contact stays as a row with is_active false."""

    STATUS_GONE = {"B": "blocked", "S": "stopped"}  # A active and V archived may chat

    uuid = peewee.CharField(unique=True)
    org = peewee.ForeignKeyField(Org, column_name="org_id", lazy_load=False)
    is_active = peewee.BooleanField()
    status = peewee.CharField()
    name = peewee.CharField(null=True)
    modified_on = DateTimeTZField()

    class Meta:
        table_name = "contacts_contact"

    @property
    def gone(self) -> str | None:
        """Why this contact's chat may not go on ('deleted', 'blocked', 'stopped'), or None if it may."""
        return "deleted" if not self.is_active else self.STATUS_GONE.get(self.status)


class ContactURN(BaseModel):
    """A visitor's `webchat:<chat_id>` URN; Courier creates it when told `chat_started`."""

    identity = peewee.CharField()
    path = peewee.CharField()
    scheme = peewee.CharField()
    display = peewee.CharField(null=True)
    contact = peewee.ForeignKeyField(Contact, column_name="contact_id", null=True, lazy_load=False)
    org = peewee.ForeignKeyField(Org, column_name="org_id", lazy_load=False)

    class Meta:
        table_name = "contacts_contacturn"

    @staticmethod
    def identity_for(chat_id: str) -> str:
        return f"webchat:{chat_id}"

    @classmethod
    def for_chat(cls, org_id: int, chat_id: str):
        """The chat's URN in this org with its contact (urn.contact), if it has one; None otherwise."""
        return cls.for_chats(org_id, [chat_id]).get(chat_id)

    @classmethod
    def for_chats(cls, org_id: int, chat_ids: list) -> dict:
        """The URNs of these chats in this org that belong to a contact, with the contact, in one query:
        chat ID -> URN. (org, identity) is unique, so each chat has one at most."""
        chats = {cls.identity_for(chat_id): chat_id for chat_id in chat_ids}
        query = cls.select(cls, Contact).join(Contact).where((cls.org == org_id) & cls.identity.in_(list(chats)))
        return {chats[urn.identity]: urn for urn in query}

    @classmethod
    def set_email(cls, org_id: int, chat_id: str, email: str) -> bool:
        """Store the email as the URN's display and touch its contact; False if there is no such chat."""
        urn = cls.for_chat(org_id, chat_id)
        if urn is None:
            return False
        cls.update(display=email).where(cls.id == urn.id).execute()
        Contact.update(modified_on=datetime.now(timezone.utc)).where(Contact.id == urn.contact_id).execute()
        return True
