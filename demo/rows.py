"""RapidPro rows as RapidPro would write them, and a throwaway database to hold them: shared by the
test fixtures and the benchmark (bench/), so the SQL that fills RapidPro's tables lives in one place
(here and in demo/seed.py, whose writers it builds on). Not a test module: the benchmark needs it too.
"""

import itertools
import json
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from demo.seed import create_tables, insert, new_channel, new_membership, new_org, new_user
from models.schema import NEWEST, Columns

TABLES = [
    "msgs_msg",
    "contacts_contacturn",
    "contacts_contact",
    "channels_channel",
    "orgs_orgmembership",
    "orgs_org",
    "users_user",
]


def create_database(admin_url: str, name: str, generation: str = NEWEST) -> str:
    """Create database `name` on admin_url's server with RapidPro's tables as `generation` has them
    (models/sql/; None: no tables); returns its URL."""
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + name))
    if generation is None:
        return url
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        create_tables(cur, generation)
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
    """Inserts RapidPro rows the way RapidPro, mailroom and Courier write them, in the database's
    generation: every NOT NULL column filled, every CHECK constraint met."""

    def __init__(self, url: str):
        # named, so that tests which cut chip's database connections can spare this one
        self.conn = psycopg2.connect(url, application_name="keep")
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            self.columns = Columns.read(cur)
        self._ids = itertools.count(1)

    def one(self, sql: str, *args):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone() if cur.description else None

    def _write(self, writer, *args, **kwargs):
        with self.conn.cursor() as cur:
            return writer(cur, self.columns, *args, **kwargs)

    def org(self, name="Nyaruka", active=True) -> int:
        """An org, created by an admin who is its member (as RapidPro's signup does)."""
        admin = self.user(f"admin{next(self._ids)}@{name.lower()}.example", "Admin")
        org_id = self._write(new_org, name, admin, is_active=active)
        self._write(new_membership, org_id, admin)
        return org_id

    def channel(self, org_id: int, secret="sesame", active=True, channel_type="CHP") -> str:
        creator = self.one("SELECT created_by_id FROM orgs_org WHERE id = %s", org_id)[0]
        return self._write(
            new_channel,
            org_id,
            creator,
            {"secret": secret, "send_url": "https://chip.test/wc/send"},
            name="Webchat",
            channel_type=channel_type,
            is_active=active,
        )

    def user(
        self, email="bob@nyaruka.com", first="Bob", last="McTickets", avatar=None, org_id=None, staff=False, active=True
    ) -> int:
        """A user; with org_id, a member of that org (an agent: role T)."""
        user_id = self._write(new_user, email, first, last, avatar, is_staff=staff, is_active=active)
        if org_id is not None:
            self._write(new_membership, org_id, user_id, role="T")
        return user_id

    def contact(self, org_id: int, channel_uuid: str, chat_id: str, email=None, **state) -> int:
        return self.contacts(org_id, channel_uuid, [chat_id], email, **state)[0]

    def contacts(self, org_id: int, channel_uuid: str, chat_ids: list, email=None, status="A", active=True) -> list:
        """A contact with a webchat URN for each chat ID, in two statements however many there are."""
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO contacts_contact (uuid, org_id, is_active, status, ticket_count, created_on, modified_on)"
                " SELECT u, %s, %s, %s, 0, now(), now() - interval '1 day' FROM unnest(%s::text[]) AS u"
                " RETURNING id",
                (org_id, active, status, [str(uuid.uuid4()) for _ in chat_ids]),
            )
            contact_ids = [row[0] for row in cur.fetchall()]
            cur.execute(
                "INSERT INTO contacts_contacturn (identity, path, scheme, display, priority, channel_id, contact_id,"
                " org_id) SELECT 'webchat:' || c, c, 'webchat', %s, 1000,"
                " (SELECT id FROM channels_channel WHERE uuid = %s), k, %s"
                " FROM unnest(%s::text[], %s::int[]) AS t(c, k)",
                (email, channel_uuid, org_id, list(chat_ids), contact_ids),
            )
        return contact_ids

    def urn(self, contact_id: int, channel_uuid: str, scheme: str, path: str) -> int:
        """Another URN of a contact, on another channel (a WhatsApp number, say)."""
        org_id, channel_id = self.one("SELECT org_id, id FROM channels_channel WHERE uuid = %s", channel_uuid)
        return self._write(
            insert,
            "contacts_contacturn",
            identity=f"{scheme}:{path}",
            path=path,
            scheme=scheme,
            priority=1000,
            channel_id=channel_id,
            contact_id=contact_id,
            org_id=org_id,
        )

    def msg(
        self,
        contact_id: int,
        text: str,
        direction="O",
        created_on=None,
        msg_type="T",
        visibility="V",
        urn_id=None,
        quick_replies=None,
        ticket=False,
        **columns,
    ) -> int:
        """A msgs_msg row on the contact's webchat URN (or `urn_id`) and its channel: an incoming one
        handled by mailroom (H), an outgoing one wired by Courier (W, with sent_on). `quick_replies`
        (texts) go to the generation's column, `ticket` sets the ticket columns it has; `columns`
        sets others (flow_id, created_by_id, attachments, ...)."""
        urn_id, channel_id, org_id = self.one(
            "SELECT id, channel_id, org_id FROM contacts_contacturn WHERE contact_id = %s"
            " AND (id = %s OR (%s IS NULL AND scheme = 'webchat'))",
            contact_id,
            urn_id,
            urn_id,
        )
        created_on = created_on or datetime.now(timezone.utc)
        status = "H" if direction == "I" else "W"
        values = dict(
            uuid=str(uuid.uuid4()),
            org_id=org_id,
            channel_id=channel_id,
            contact_id=contact_id,
            contact_urn_id=urn_id,
            text=text,
            created_on=created_on,
            modified_on=created_on,
            sent_on=created_on + timedelta(milliseconds=5) if status == "W" else None,
            msg_type=msg_type,
            direction=direction,
            status=status,
            visibility=visibility,
            msg_count=1,
            error_count=0,
            high_priority=False,
            is_android=False,
            quick_replies=quick_replies,
            quickreplies=json.dumps([{"type": "text", "text": q} for q in quick_replies]) if quick_replies else None,
            ticket_id=next(self._ids) if ticket else None,
            ticket_uuid=str(uuid.uuid4()) if ticket else None,
        )
        return self._write(insert, "msgs_msg", **{**values, **columns})

    def clear(self):
        with self.conn.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")

    def close(self):
        self.conn.close()
