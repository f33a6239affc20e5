"""Resumes asked for in one turn of the loop share one read of the database, and each gets its own answer."""

import asyncio

import pytest

from models import MODELS, ContactURN, Database, DatabaseUnavailable
from services import lookups as lookups_module
from services.lookups import Lookups


@pytest.fixture
def lookups(database):
    return Lookups(database)


@pytest.fixture
def reads(monkeypatch):
    """The chat IDs of each query for_chats made, in order (the query still runs)."""
    made = []
    original = ContactURN.for_chats.__func__

    def counted(cls, org_id, chat_ids):
        made.append((org_id, sorted(chat_ids)))
        return original(cls, org_id, chat_ids)

    monkeypatch.setattr(ContactURN, "for_chats", classmethod(counted))
    return made


async def test_resumes_of_one_turn_share_a_read_per_org_and_get_their_own_urn(lookups, reads, rows, channel):
    org_id = channel["org_id"]
    mine = [f"{i:024d}" for i in range(20)]
    rows.contacts(org_id, channel["uuid"], mine[:10], email="ten@example.com")
    rows.contacts(org_id, channel["uuid"], mine[10:])
    other_org = rows.org("Other")
    rows.contact(other_org, rows.channel(other_org), "o" * 24, email="o@other.org")

    asked = [(org_id, c) for c in mine] + [
        (org_id, mine[0]),
        (org_id, "o" * 24),
        (org_id, "u" * 24),
        (other_org, "o" * 24),
        (other_org, mine[0]),
    ]
    urns = await asyncio.gather(*[lookups.urn(org, chat_id) for org, chat_id in asked])

    assert [urn.path if urn else None for urn in urns] == mine + [mine[0], None, None, "o" * 24, None]
    assert [urn.display for urn in urns[:10]] == ["ten@example.com"] * 10
    assert urns[23].display == "o@other.org" and urns[23].org_id == other_org
    assert sorted(reads) == sorted(
        [(org_id, sorted(set(mine) | {"o" * 24, "u" * 24})), (other_org, sorted(["o" * 24, mine[0]]))]
    )


async def test_a_turn_of_many_resumes_reads_in_bounded_queries(lookups, reads, rows, channel, monkeypatch):
    monkeypatch.setattr(lookups_module, "URN_BATCH", 7)
    chats = [f"{i:024d}" for i in range(30)]
    rows.contacts(channel["org_id"], channel["uuid"], chats)
    urns = await asyncio.gather(*[lookups.urn(channel["org_id"], chat_id) for chat_id in chats])
    assert [urn.path for urn in urns] == chats
    assert sorted(len(ids) for _, ids in reads) == [2, 7, 7, 7, 7]


async def test_a_failed_read_fails_every_resume_waiting_on_it(unused_tcp_port):
    # a database nobody answers on: the one read of the turn fails, and with it the three resumes
    db = Database(f"postgres://postgres@127.0.0.1:{unused_tcp_port}/rapidpro", MODELS, pool_size=1, connect_timeout=1)
    lookups = Lookups(db)
    try:
        results = await asyncio.gather(*[lookups.urn(1, f"{i:024d}") for i in range(3)], return_exceptions=True)
    finally:
        db.close()
    assert [type(r) for r in results] == [DatabaseUnavailable] * 3


async def test_a_resume_cancelled_while_it_waits_leaves_the_others_their_answers(lookups, rows, channel):
    rows.contacts(channel["org_id"], channel["uuid"], ["a" * 24, "b" * 24])
    leaving = asyncio.ensure_future(lookups.urn(channel["org_id"], "a" * 24))
    staying = asyncio.ensure_future(lookups.urn(channel["org_id"], "b" * 24))
    await asyncio.sleep(0)  # both have joined this turn's read
    leaving.cancel()
    assert (await staying).path == "b" * 24
    assert leaving.cancelled()
