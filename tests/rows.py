"""RapidPro rows as RapidPro would write them, and a throwaway database to hold them: shared by the
test fixtures and the benchmark (bench/), so the SQL that fills RapidPro's tables lives in one place.
"""

import json
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from demo.seed import create_tables

TABLES = ["msgs_msg", "contacts_contacturn", "contacts_contact", "channels_channel", "users_user", "orgs_org",
          "flows_flow", "tickets_ticket", "msgs_broadcast"]


def create_database(admin_url: str, name: str) -> str:
    """Create database `name` on admin_url's server with RapidPro's tables; returns its URL."""
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + name))
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        create_tables(cur)
    conn.close()
    return url


def drop_database(admin_url: str, url: str):
    """Drop the database create_database made, cutting whoever is still connected to it."""
    name = urlsplit(url).path.lstrip("/")
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


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
        return self.contacts(org_id, channel_uuid, [chat_id], email)[0]

    def contacts(self, org_id: int, channel_uuid: str, chat_ids: list, email=None) -> list:
        """A contact with a webchat URN for each chat ID, in two statements however many there are."""
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO contacts_contact (uuid, org_id, is_active, status, ticket_count, created_on, modified_on)"
                " SELECT u::uuid, %s, true, 'A', 0, now(), now() - interval '1 day' FROM unnest(%s::text[]) AS u"
                " RETURNING id", (org_id, [str(uuid.uuid4()) for _ in chat_ids]))
            contact_ids = [row[0] for row in cur.fetchall()]
            cur.execute(
                "INSERT INTO contacts_contacturn (identity, path, scheme, display, priority, channel_id, contact_id,"
                " org_id) SELECT 'webchat:' || c, c, 'webchat', %s, 1000,"
                " (SELECT id FROM channels_channel WHERE uuid = %s), k, %s"
                " FROM unnest(%s::text[], %s::int[]) AS t(c, k)",
                (email, channel_uuid, org_id, list(chat_ids), contact_ids))
        return contact_ids

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
