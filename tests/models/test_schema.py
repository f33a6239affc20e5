"""models/sql/ against the contract, and what chip reads of a database's columns."""

import re
import secrets

import psycopg2
import pytest

from demo.rows import create_database, drop_database
from models.schema import GENERATIONS, SQL, Columns, SchemaError, schema_files
from tests.servers import ROOT

SPEC = ROOT.parent / "shared" / "spec"


def spec_or_skip(name: str):
    if not (SPEC / name).exists():
        pytest.skip("../shared is not beside this checkout")
    return (SPEC / name).read_text()


@pytest.mark.parametrize("generation", GENERATIONS)
def test_table_copies_are_the_contracts_files(generation):
    """models/sql/ (what the tests and the demo create) is ../shared/spec, byte for byte."""
    name = f"rapidpro-tables-{generation}.sql"
    assert (SQL / name).read_text() == spec_or_skip(name)


@pytest.mark.parametrize("generation", GENERATIONS)
def test_membership_table_has_the_described_columns(generation):
    """orgs_orgmembership is not in the contract's dumps: its SQL here has exactly the columns that
    rapidpro-schema-changes.md describes, with their types and NOT NULLs."""
    described = spec_or_skip("rapidpro-schema-changes.md").split("## Org membership", 1)[1]
    sql = (SQL / f"orgs-orgmembership-{generation}.sql").read_text()
    table = re.search(r"CREATE TABLE public\.orgs_orgmembership \((.*?)\n\);", sql, re.S).group(1)
    columns = {line.split()[0]: line.strip().rstrip(",") for line in table.strip().splitlines()}
    expected = {"id", "org_id", "user_id", "role_code", "team_id", "last_seen_on"}
    if generation == "v26.3.53":
        expected |= {"can_assign", "can_reply_non_own"}
        assert "id bigint NOT NULL" in columns["id"]
    assert set(columns) == expected
    for name in [
        "org_id integer NOT NULL",
        "user_id integer NOT NULL",
        "role_code varchar(1) NOT NULL",
        "team_id bigint NULL",
        "last_seen_on timestamptz NULL",
    ] + (["can_assign boolean NOT NULL", "can_reply_non_own boolean NOT NULL"] if "can_assign" in columns else []):
        assert f"`{name}" in described, name
    assert "UNIQUE (org_id, user_id)" in described and "UNIQUE (org_id, user_id)" in sql


@pytest.fixture
def bare_database(test_db):
    """An empty database of the test's own, dropped at teardown."""
    url = create_database(test_db, f"chip_schema_{secrets.token_hex(4)}", generation=None)
    yield url
    drop_database(test_db, url)


def columns_after(url: str, *statements) -> Columns:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return Columns.read(cur)
    finally:
        conn.close()


@pytest.mark.parametrize(
    "generation, chosen", [("v10.3.121", "ticket_uuid, quick_replies"), ("v26.3.53", "ticket_uuid, quickreplies")]
)
def test_both_generations_are_served(bare_database, generation, chosen):
    statements = [path.read_text() for path in schema_files(generation)]
    columns = columns_after(bare_database, *statements, "RESET search_path")
    columns.check()
    assert columns.describe() == chosen
    assert columns.has("msgs_msg", "ticket_id") is (generation == "v10.3.121")
    assert columns.only("users_user", {"email": "a@b.c", "settings": "{}"}) == (
        {"email": "a@b.c"} if generation == "v10.3.121" else {"email": "a@b.c", "settings": "{}"}
    )


def test_what_is_missing_is_named_in_one_line(bare_database):
    statements = [path.read_text() for path in schema_files()] + [
        "RESET search_path",
        "DROP TABLE orgs_orgmembership",
        "ALTER TABLE msgs_msg DROP COLUMN quickreplies",
        "ALTER TABLE users_user DROP COLUMN avatar",
    ]
    with pytest.raises(SchemaError) as refused:
        columns_after(bare_database, *statements).check()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        "RapidPro's database lacks table orgs_orgmembership, users_user.avatar, msgs_msg.quickreplies or quick_replies"
    )


def test_an_empty_database_lacks_every_table(bare_database):
    lacking = columns_after(bare_database).missing()
    assert lacking == [
        f"table {name}"
        for name in [
            "orgs_org",
            "orgs_orgmembership",
            "users_user",
            "channels_channel",
            "contacts_contact",
            "contacts_contacturn",
            "msgs_msg",
        ]
    ]
