from datetime import datetime, timezone

import peewee
from playhouse.postgres_ext import DateTimeTZField

from models.base import BaseModel
from models.org import Org


class Contact(BaseModel):
    uuid = peewee.CharField(unique=True)
    org = peewee.ForeignKeyField(Org, column_name="org_id", lazy_load=False)
    is_active = peewee.BooleanField()
    status = peewee.CharField()
    name = peewee.CharField(null=True)
    modified_on = DateTimeTZField()

    class Meta:
        table_name = "contacts_contact"


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
        """The chat's URN in this org, if it belongs to a contact; None otherwise."""
        return cls.for_chats(org_id, [chat_id]).get(chat_id)

    @classmethod
    def for_chats(cls, org_id: int, chat_ids: list) -> dict:
        """The URNs of these chats in this org that belong to a contact, in one query: chat ID -> URN.
        (org, identity) is unique, so each chat has one at most."""
        chats = {cls.identity_for(chat_id): chat_id for chat_id in chat_ids}
        query = cls.select().where((cls.org == org_id) & cls.identity.in_(list(chats)) & cls.contact.is_null(False))
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
