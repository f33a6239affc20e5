"""Which of RapidPro's columns this database has, read once from information_schema.

RapidPro changed columns chip reads between the releases that carry CHP (v10.1.119 to v26.3.53;
../shared/spec/rapidpro-schema-changes.md): msgs_msg.ticket_id became ticket_uuid (both exist
from v10.3.73 to v26.1.9), quick_replies (a text array) became quickreplies (JSON objects; both
from v26.1.18 to v26.1.22), channels_channel.uuid became a uuid, users_user gained settings and
channels_channel lost log_policy. chip maps what it finds, with no setting; a database that lacks a
table or a column chip needs is refused at start (SchemaError) instead of failing per request.

`models/sql/` holds RapidPro's tables at both ends of that range, as copies of ../shared/spec
(tests/models/test_schema.py keeps them equal), for the tests and for the demo's empty databases.
"""

from pathlib import Path

SQL = Path(__file__).resolve().parent / "sql"
GENERATIONS = ("v10.3.121", "v26.3.53")  # the first and last RapidPro releases of models/sql/
NEWEST = GENERATIONS[-1]

# the columns chip reads or writes, in every generation
NEEDED = {
    "orgs_org": {"id", "is_active"},
    "orgs_orgmembership": {"org_id", "user_id"},
    "users_user": {"id", "email", "first_name", "last_name", "avatar", "is_active", "is_staff"},
    "channels_channel": {"id", "uuid", "org_id", "is_active", "channel_type", "name", "config"},
    "contacts_contact": {"id", "org_id", "is_active", "status", "modified_on"},
    "contacts_contacturn": {"id", "identity", "path", "scheme", "display", "contact_id", "org_id"},
    "msgs_msg": {
        "id",
        "uuid",
        "org_id",
        "channel_id",
        "contact_id",
        "broadcast_id",
        "flow_id",
        "created_by_id",
        "text",
        "attachments",
        "created_on",
        "msg_type",
        "direction",
        "visibility",
    },
}
# at least one column of each pair: the newer name first
EITHER = {"msgs_msg": [("ticket_uuid", "ticket_id"), ("quickreplies", "quick_replies")]}

COLUMNS_SQL = (
    "SELECT table_name, column_name FROM information_schema.columns"
    " WHERE table_schema = ANY (current_schemas(false)) AND table_name = ANY (%s)"
)


def schema_files(generation: str = NEWEST) -> list[Path]:
    """The SQL that creates RapidPro's tables (and orgs_orgmembership) as `generation` has them."""
    return [SQL / f"rapidpro-tables-{generation}.sql", SQL / f"orgs-orgmembership-{generation}.sql"]


class SchemaError(Exception):
    """RapidPro's database lacks what chip needs; the message is one line naming it."""


class Columns:
    """The columns each of chip's tables has in this database."""

    def __init__(self, found: dict[str, set]):
        self.found = found

    @classmethod
    def read(cls, cursor) -> "Columns":
        """Read them with a DB-API cursor (psycopg2's, or the one peewee's execute_sql returns)."""
        cursor.execute(COLUMNS_SQL, (sorted(NEEDED),))
        found: dict[str, set] = {}
        for table, column in cursor.fetchall():
            found.setdefault(table, set()).add(column)
        return cls(found)

    def has(self, table: str, column: str) -> bool:
        return column in self.found.get(table, ())

    def missing(self) -> list[str]:
        """What chip needs and this database lacks: 'table' or 'table.column' (or 'a|b': either)."""
        lacking = []
        for table, columns in NEEDED.items():
            if table not in self.found:
                lacking.append(f"table {table}")
                continue
            lacking += [f"{table}.{column}" for column in sorted(columns - self.found[table])]
            lacking += [
                f"{table}.{' or '.join(pair)}"
                for pair in EITHER.get(table, ())
                if not any(self.has(table, column) for column in pair)
            ]
        return lacking

    def check(self):
        """Raise SchemaError naming everything missing, if anything is."""
        lacking = self.missing()
        if lacking:
            raise SchemaError(
                f"RapidPro's database lacks {', '.join(lacking)}: is this RapidPro v10.1.119 or "
                f"later, and is --db its database?"
            )

    def only(self, table: str, values: dict) -> dict:
        """`values` without the columns this table lacks: how the demo and the tests write a row that
        names the columns of every generation."""
        return {column: value for column, value in values.items() if self.has(table, column)}

    def describe(self) -> str:
        """The choices made, for the start-up log line."""
        return ", ".join(
            next(c for c in pair if self.has(table, c)) for table, pairs in EITHER.items() for pair in pairs
        )
