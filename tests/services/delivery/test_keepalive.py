"""One timer pings every socket (services/delivery/keepalive.py): a widget that answers stays open
however long it idles, one that answers nothing is closed, and a closed socket is let go."""

import asyncio

from tests.faults.test_connections import RawSocket
from tests.polling import wait_until


async def test_a_widget_that_answers_pings_stays_open_and_one_that_does_not_is_closed(start_chip, channel, bound):
    server = await start_chip(ping_interval=0.2, ping_timeout=0.2)
    alive = await bound(server, channel)  # Tornado's client answers every ping with a pong
    dead = await RawSocket.open(server, channel["uuid"])  # answers nothing
    await dead.send({"type": "start_chat"})
    try:
        # closed, after the 5 s Tornado waits for a closing handshake the dead socket never answers
        assert await wait_until(lambda: server.services.registry.open_count == 1, timeout=10)
        await asyncio.sleep(1.0)  # five intervals
        assert server.services.registry.open_count == 1
        await alive.send({"type": "send_msg", "text": "still here"})
        await alive.silent(0.2)
        assert alive.conn.close_code is None
    finally:
        dead.close()
    alive.close()
    # both gone: neither is pinged any more
    assert await wait_until(lambda: server.services.keepalive.watched == 0, timeout=3)
