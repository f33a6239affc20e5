"""The registry of this process's sockets (services/delivery/sessions.py): which sockets hold which
chat, who is the first and the last of a chat, and closing them all at shutdown."""

from types import SimpleNamespace

from services.delivery.sessions import Registry, Session
from services.store import keys
from tests.transport import Socket

CHANNEL = SimpleNamespace(uuid="8eb23e93-5ecb-45ba-b726-3b064e0c56ab", org_id=1)


def session(chat_id: str = None) -> Session:
    """A socket's session, opened on CHANNEL and bound to `chat_id` if one is given."""
    opened = Session(CHANNEL, Socket(), remote_ip="127.0.0.1")
    if chat_id:
        opened.bind(chat_id)
    return opened


def test_a_session_bound_to_a_chat_is_addressed_by_its_chat_key_until_unbound():
    opened = session()
    assert not opened.bound and opened.key is None
    opened.bind("a" * 24)
    assert opened.bound and opened.chat_id == "a" * 24
    assert opened.key == keys.chat_key(CHANNEL.uuid, "a" * 24)
    opened.unbind()
    assert not opened.bound and opened.chat_id is None and opened.key is None


def test_the_first_socket_of_a_chat_is_told_apart_from_the_next_ones():
    registry = Registry()
    laptop, phone, other = session("a" * 24), session("a" * 24), session("b" * 24)
    assert registry.add(laptop), "the chat's first socket in this process must subscribe to its wake-ups"
    assert not registry.add(phone)
    assert registry.add(other), "another chat's first socket was taken for a second one"
    assert set(registry.sessions(laptop.key)) == {laptop, phone}
    assert registry.sessions(other.key) == [other]
    assert sorted(registry.chats()) == sorted([laptop.key, other.key])


def test_only_the_last_socket_of_a_chat_to_go_frees_the_chat():
    registry = Registry()
    laptop, phone = session("a" * 24), session("a" * 24)
    for opened in (laptop, phone):
        registry.open(opened)
        registry.add(opened)
    assert not registry.remove(laptop), "a chat was freed while another socket still holds it"
    assert registry.sessions(phone.key) == [phone]
    assert registry.remove(phone)
    assert registry.sessions(phone.key) == [] and registry.chats() == []
    assert not registry.remove(phone), "a socket removed twice freed its chat twice"


def test_open_sockets_are_counted_bound_or_not_until_removed():
    registry = Registry()
    waiting, chatting = session(), session("a" * 24)
    for opened in (waiting, chatting):
        registry.open(opened)
    registry.add(chatting)
    assert registry.open_count == 2
    assert not registry.remove(waiting)  # it held no chat
    assert registry.open_count == 1 and registry.sessions(chatting.key) == [chatting]


def test_close_all_closes_every_open_socket_with_1001_and_forgets_them():
    registry = Registry()
    sockets = [session(), session("a" * 24), session("a" * 24), session("b" * 24)]
    for opened in sockets:
        registry.open(opened)
        if opened.bound:
            registry.add(opened)
    registry.close_all()
    assert [opened.transport.closed for opened in sockets] == [(1001, "server shutting down")] * 4
    assert registry.open_count == 0 and registry.chats() == []
    assert registry.sessions(keys.chat_key(CHANNEL.uuid, "a" * 24)) == []
