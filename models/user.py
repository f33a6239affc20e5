import peewee

from models.base import BaseModel
from models.org import OrgMembership


class User(BaseModel):
    """A RapidPro user: the agent behind an outgoing message of origin `chat`."""

    email = peewee.CharField()
    first_name = peewee.CharField(null=True)
    last_name = peewee.CharField(null=True)
    is_active = peewee.BooleanField()
    is_staff = peewee.BooleanField()
    avatar = peewee.CharField(null=True)

    class Meta:
        table_name = "users_user"

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    def as_json(self, storage_url: str) -> dict:
        """The `user` object of a msg_out: avatar only when the user has one."""
        user = {"id": self.id, "name": self.name, "email": self.email}
        if self.avatar:
            user["avatar"] = f"{storage_url.rstrip('/')}/{self.avatar.lstrip('/')}"
        return user

    @classmethod
    def shown_in(cls, org_id: int):
        """Whether a widget of this org may show the user as a sender: an active user who is a member
        of the org, or RapidPro staff (who act in any org). Anyone else's name and email stay private."""
        member = OrgMembership.select(OrgMembership.id).where(
            (OrgMembership.org == org_id) & (OrgMembership.user_id == cls.id)
        )
        return (cls.is_active == True) & ((cls.is_staff == True) | peewee.fn.EXISTS(member))  # noqa: E712

    @classmethod
    def for_org(cls, user_id: int, org_id: int):
        """The user with this id, or None; its `shown` says whether this org's widgets may show it."""
        return cls.select(cls, cls.shown_in(org_id).alias("shown")).where(cls.id == user_id).objects().first()
