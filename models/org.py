import peewee

from models.base import BaseModel


class Org(BaseModel):
    name = peewee.CharField()
    is_active = peewee.BooleanField()

    class Meta:
        table_name = "orgs_org"
