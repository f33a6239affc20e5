"""The demo's rows: RapidPro's tables (when missing), an org, its CHP channel and a staff user.

Each row is found or created on its own, so a rerun keeps earlier chats and a partly emptied
database is completed. The channel UUID is fixed so the demo URL stays the same between runs.
The functions that write RapidPro's rows the way RapidPro does (users, orgs, memberships,
channels, every NOT NULL column filled, in whichever generation the database has) are shared with
the tests and the benchmark (demo/rows.py).
"""

import dataclasses
import json
import logging
import secrets
import uuid
from datetime import datetime, timezone

import psycopg2

from models.schema import NEWEST, Columns, schema_files

logger = logging.getLogger(__name__)

CHANNEL_UUID = "c0ffee00-5eed-4c4a-8d3e-000000000001"
ORG_NAME = "Nyaruka Coffee"
STAFF = {"email": "sam@nyaruka-coffee.example", "first_name": "Sam", "last_name": "Okafor", "avatar": "avatars/sam.svg"}
FLOW_ID = 1  # the bot's messages name a flow; flows_flow itself is not among chip's tables


@dataclasses.dataclass(frozen=True)
class Seed:
    org_id: int
    channel_uuid: str
    secret: str
    flow_id: int
    user_id: int


def create_tables(cur, generation: str = NEWEST):
    """RapidPro's tables as `generation` has them (models/sql/), unless they already exist."""
    cur.execute("SELECT to_regclass('public.msgs_msg')")
    if cur.fetchone()[0] is None:
        for path in schema_files(generation):
            cur.execute(path.read_text())
        cur.execute("RESET search_path")  # pg_dump's text empties it for the session
        logger.info("created RapidPro's tables (%s)", generation)


def insert(cur, columns: Columns, table: str, **values) -> int:
    """Insert a row with those of `values` the table has in this generation; its id."""
    values = columns.only(table, values)
    cur.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))}) RETURNING id",
        list(values.values()),
    )
    return cur.fetchone()[0]


def new_user(
    cur, columns: Columns, email: str, first_name="", last_name="", avatar=None, is_staff=False, is_active=True
) -> int:
    """A user as RapidPro's signup writes it (names '' when not given, an unusable password)."""
    return insert(
        cur,
        columns,
        "users_user",
        email=email,
        first_name=first_name or "",
        last_name=last_name or "",
        avatar=avatar,
        is_staff=is_staff,
        is_active=is_active,
        password="!" + secrets.token_urlsafe(30),
        is_superuser=False,
        is_system=False,
        uuid=str(uuid.uuid4()),
        language="en",
        date_joined=_now(),
        settings=json.dumps({}),
    )


def new_org(cur, columns: Columns, name: str, created_by: int, is_active=True) -> int:
    return insert(
        cur,
        columns,
        "orgs_org",
        name=name,
        is_active=is_active,
        created_on=_now(),
        modified_on=_now(),
        uuid=str(uuid.uuid4()),
        timezone="UTC",
        date_format="D",
        flow_languages=["eng"],
        input_collation="default",
        config=json.dumps({}),
        features=[],
        limits=json.dumps({}),
        api_rates=json.dumps({}),
        is_anon=False,
        is_flagged=False,
        is_suspended=False,
        created_by_id=created_by,
        modified_by_id=created_by,
    )


def new_membership(cur, columns: Columns, org_id: int, user_id: int, role="A") -> int:
    return insert(
        cur,
        columns,
        "orgs_orgmembership",
        org_id=org_id,
        user_id=user_id,
        role_code=role,
        can_assign=True,
        can_reply_non_own=True,
    )


def new_channel(
    cur,
    columns: Columns,
    org_id: int,
    created_by: int,
    config: dict,
    channel_uuid: str = None,
    name="Website chat",
    channel_type="CHP",
    is_active=True,
) -> str:
    """A channel as RapidPro's CHP claim view writes it; its UUID."""
    channel_uuid = channel_uuid or str(uuid.uuid4())
    insert(
        cur,
        columns,
        "channels_channel",
        uuid=channel_uuid,
        org_id=org_id,
        is_active=is_active,
        channel_type=channel_type,
        name=name,
        schemes=["webchat"],
        config=json.dumps(config),
        role="SR",
        log_policy="A",
        is_system=False,
        is_enabled=True,
        created_on=_now(),
        modified_on=_now(),
        created_by_id=created_by,
        modified_by_id=created_by,
    )
    return channel_uuid


def _now() -> datetime:
    return datetime.now(timezone.utc)


def ensure(dsn: str, send_url: str) -> Seed:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            create_tables(cur)
            return _ensure_rows(cur, Columns.read(cur), send_url)
    finally:
        conn.close()


def _one(cur, sql, *args):
    cur.execute(sql, args)
    return cur.fetchone()


def _ensure_rows(cur, columns: Columns, send_url):
    found = _one(cur, "SELECT id FROM users_user WHERE email = %s", STAFF["email"])
    user_id = found[0] if found else new_user(cur, columns, is_staff=True, **STAFF)
    channel = _one(cur, "SELECT org_id, config FROM channels_channel WHERE uuid = %s", CHANNEL_UUID)
    if channel is None:
        found = _one(cur, "SELECT id FROM orgs_org WHERE name = %s", ORG_NAME)
        org_id = found[0] if found else new_org(cur, columns, ORG_NAME, user_id)
        if _one(cur, "SELECT id FROM orgs_orgmembership WHERE org_id = %s AND user_id = %s", org_id, user_id) is None:
            new_membership(cur, columns, org_id, user_id)
        # a fresh secret per database: the demo reads it back rather than hard-coding one
        config = {"secret": secrets.token_urlsafe(30), "send_url": send_url}
        new_channel(cur, columns, org_id, user_id, config, CHANNEL_UUID)
        logger.info("seeded org %r and channel %s", ORG_NAME, CHANNEL_UUID)
    else:
        org_id, config = channel
        if config.get("send_url") != send_url:
            config = {**config, "send_url": send_url}
            cur.execute(
                "UPDATE channels_channel SET config = %s, modified_on = now() WHERE uuid = %s",
                (json.dumps(config), CHANNEL_UUID),
            )
    return Seed(org_id, CHANNEL_UUID, config["secret"], FLOW_ID, user_id)
