"""RapidPro rows for tests, inserted the way RapidPro would (compatible with rapidpro-tables.sql)."""

import json
import uuid
from datetime import datetime, timezone

import psycopg2

TABLES = ["msgs_msg", "contacts_contacturn", "contacts_contact", "channels_channel", "users_user", "orgs_org",
          "flows_flow", "tickets_ticket", "msgs_broadcast"]


class Rows:
    """Inserts RapidPro rows the way RapidPro would (every NOT NULL column filled)."""

    def __init__(self, url: str):
        # named, so that tests which cut chip's database connections can spare this one
        self.conn = psycopg2.connect(url, application_name="keep")
        self.conn.autocommit = True

    def one(self, sql: str, *args):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone() if cur.description else None

    def org(self, name="Nyaruka") -> int:
        return self.one("INSERT INTO orgs_org (name, is_active) VALUES (%s, true) RETURNING id", name)[0]

    def channel(self, org_id: int, secret="sesame", active=True, channel_type="CHP") -> str:
        channel_uuid = str(uuid.uuid4())
        self.one(
            "INSERT INTO channels_channel (uuid, org_id, is_active, channel_type, name, schemes, config, role,"
            " log_policy, created_on, modified_on, created_by_id, modified_by_id)"
            " VALUES (%s, %s, %s, %s, 'Webchat', '{webchat}', %s, 'SR', 'A', now(), now(), 1, 1)",
            channel_uuid, org_id, active, channel_type, json.dumps({"secret": secret}))
        return channel_uuid

    def user(self, email="bob@nyaruka.com", first="Bob", last="McTickets", avatar=None) -> int:
        return self.one(
            "INSERT INTO users_user (email, first_name, last_name, is_active, is_staff, avatar)"
            " VALUES (%s, %s, %s, true, true, %s) RETURNING id", email, first, last, avatar)[0]

    def contact(self, org_id: int, channel_uuid: str, chat_id: str, email=None) -> int:
        contact_id = self.one(
            "INSERT INTO contacts_contact (uuid, org_id, is_active, status, ticket_count, created_on, modified_on)"
            " VALUES (%s, %s, true, 'A', 0, now(), now() - interval '1 day') RETURNING id",
            str(uuid.uuid4()), org_id)[0]
        self.one(
            "INSERT INTO contacts_contacturn (identity, path, scheme, display, priority, channel_id, contact_id,"
            " org_id) VALUES (%s, %s, 'webchat', %s, 1000,"
            " (SELECT id FROM channels_channel WHERE uuid = %s), %s, %s)",
            f"webchat:{chat_id}", chat_id, email, channel_uuid, contact_id, org_id)
        return contact_id

    def msg(self, contact_id: int, text: str, direction="O", created_on=None, msg_type="T", visibility="V",
            **columns) -> int:
        """A msgs_msg row; `columns` sets optional ones (flow_id, created_by_id, attachments, ...)."""
        org_id = self.one("SELECT org_id FROM contacts_contact WHERE id = %s", contact_id)[0]
        values = dict(uuid=str(uuid.uuid4()), org_id=org_id, contact_id=contact_id, text=text,
                      created_on=created_on or datetime.now(timezone.utc), modified_on=datetime.now(timezone.utc),
                      msg_type=msg_type, direction=direction, status="W", visibility=visibility, msg_count=1,
                      error_count=0, **columns)
        return self.one(f"INSERT INTO msgs_msg ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})"
                        " RETURNING id", *values.values())[0]

    def insert(self, table: str, **values) -> int:
        if not values:
            return self.one(f"INSERT INTO {table} DEFAULT VALUES RETURNING id")[0]
        return self.one(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})"
                        " RETURNING id", *values.values())[0]

    def clear(self):
        with self.conn.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")

    def close(self):
        self.conn.close()
