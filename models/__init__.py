"""peewee models over the RapidPro tables chip reads (and the two columns it writes)."""

from models.base import Database, DatabaseUnavailable
from models.channel import Channel
from models.contact import Contact, ContactURN
from models.msg import Msg
from models.org import Org, OrgMembership
from models.schema import Columns, SchemaError
from models.user import User

MODELS = [Org, OrgMembership, User, Channel, Contact, ContactURN, Msg]

__all__ = [
    "MODELS",
    "Columns",
    "Database",
    "DatabaseUnavailable",
    "Channel",
    "Contact",
    "ContactURN",
    "Msg",
    "Org",
    "OrgMembership",
    "SchemaError",
    "User",
]
