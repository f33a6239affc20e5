import peewee

from models.base import BaseModel


class Org(BaseModel):
    name = peewee.CharField()
    is_active = peewee.BooleanField()

    class Meta:
        table_name = "orgs_org"


class OrgMembership(BaseModel):
    """Which users belong to which org (RapidPro's staff users act in orgs they do not belong to)."""

    org = peewee.ForeignKeyField(Org, column_name="org_id", lazy_load=False)
    user_id = peewee.IntegerField()

    class Meta:
        table_name = "orgs_orgmembership"
