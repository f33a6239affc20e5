"""The demo's rows: RapidPro's tables (when missing), an org, its CHP channel, a flow and a staff user.

Each row is found or created on its own, so a rerun keeps earlier chats and a partly emptied
database is completed. The channel UUID is fixed so the demo URL stays the same between runs.
"""

import dataclasses
import json
import logging
import secrets
from pathlib import Path

import psycopg2

logger = logging.getLogger(__name__)

SCHEMA = Path(__file__).resolve().parent.parent / "models" / "rapidpro-tables.sql"

CHANNEL_UUID = "c0ffee00-5eed-4c4a-8d3e-000000000001"
ORG_NAME = "Nyaruka Coffee"
STAFF = {"email": "sam@nyaruka-coffee.example", "first_name": "Sam", "last_name": "Okafor",
         "avatar": "avatars/sam.svg"}


@dataclasses.dataclass(frozen=True)
class Seed:
    org_id: int
    channel_uuid: str
    secret: str
    flow_id: int
    user_id: int


def create_tables(cur):
    """RapidPro's tables as models/rapidpro-tables.sql defines them, unless they already exist."""
    cur.execute("SELECT to_regclass('public.msgs_msg')")
    if cur.fetchone()[0] is None:
        cur.execute(SCHEMA.read_text())
        logger.info("created RapidPro's tables")


def ensure(dsn: str, send_url: str) -> Seed:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            create_tables(cur)
            return _ensure_rows(cur, send_url)
    finally:
        conn.close()


def _one(cur, sql, *args):
    cur.execute(sql, args)
    return cur.fetchone()


def _ensure_rows(cur, send_url):
    user_id = (_one(cur, "SELECT id FROM users_user WHERE email = %s", STAFF["email"])
               or _one(cur, "INSERT INTO users_user (email, first_name, last_name, is_active, is_staff, avatar)"
                            " VALUES (%s, %s, %s, true, true, %s) RETURNING id", *STAFF.values()))[0]
    flow_id = (_one(cur, "SELECT min(id) FROM flows_flow")[0]
               or _one(cur, "INSERT INTO flows_flow DEFAULT VALUES RETURNING id")[0])
    channel = _one(cur, "SELECT org_id, config FROM channels_channel WHERE uuid = %s", CHANNEL_UUID)
    if channel is None:
        org_id = (_one(cur, "SELECT id FROM orgs_org WHERE name = %s", ORG_NAME)
                  or _one(cur, "INSERT INTO orgs_org (name, is_active) VALUES (%s, true) RETURNING id", ORG_NAME))[0]
        # a fresh secret per database: the demo reads it back rather than hard-coding one
        config = {"secret": secrets.token_urlsafe(16), "send_url": send_url}
        cur.execute(
            "INSERT INTO channels_channel (uuid, org_id, is_active, channel_type, name, schemes, config, role,"
            " log_policy, created_on, modified_on, created_by_id, modified_by_id)"
            " VALUES (%s, %s, true, 'CHP', 'Website chat', '{webchat}', %s, 'SR', 'A', now(), now(), %s, %s)",
            (CHANNEL_UUID, org_id, json.dumps(config), user_id, user_id))
        logger.info("seeded org %r and channel %s", ORG_NAME, CHANNEL_UUID)
    else:
        org_id, config = channel
        if config.get("send_url") != send_url:
            config = {**config, "send_url": send_url}
            cur.execute("UPDATE channels_channel SET config = %s, modified_on = now() WHERE uuid = %s",
                        (json.dumps(config), CHANNEL_UUID))
    return Seed(org_id, CHANNEL_UUID, config["secret"], flow_id, user_id)
