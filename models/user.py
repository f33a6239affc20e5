import peewee

from models.base import BaseModel


class User(BaseModel):
    """A RapidPro staff user: the agent behind an outgoing message of origin `chat`."""

    email = peewee.CharField()
    first_name = peewee.CharField(null=True)
    last_name = peewee.CharField(null=True)
    is_active = peewee.BooleanField()
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
    def by_id(cls, user_id: int):
        return cls.get_or_none(cls.id == user_id)
