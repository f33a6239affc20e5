"""What a visitor gets from the widget, in a real browser against a real chip: the conversation
across reloads and tabs, history paged on scroll, offline and chip restarts, message states,
de-duplication, attachments, quick replies, unread counts, email, keyboard and screen readers."""

import re
from datetime import datetime, timedelta, timezone

from playwright.async_api import expect
from tornado.websocket import websocket_connect

from tests.browser import chat_id, needs_chromium, say
from tests.visitor import Visitor

pytestmark = needs_chromium

W = "chip-widget "  # Playwright's CSS selectors pierce the open shadow root


async def opened(browser, site, channel, context=None, **data):
    page = await browser.page(context) if context else await browser.page()
    await page.goto(site.page(channel["uuid"], open="true", **data))
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "online")
    return page


async def write(page, text):
    await page.fill(W + "textarea", text)
    await page.press(W + "textarea", "Enter")


async def test_reload_and_a_second_tab_resume_the_conversation(site, browser, channel, courier):
    page = await opened(browser, site, channel)
    await write(page, "Do you have oat milk?")
    chat = await chat_id(page)
    await say(site, courier, channel["uuid"], chat, "We do!")
    await expect(page.locator(W + ".msg")).to_have_count(2)
    await courier.wait_for(lambda: courier.of_type("msg_status"))  # the reply was acked

    await page.reload()
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "online")
    await expect(page.locator(W + ".panel")).to_be_visible()  # it was open before the reload
    await expect(page.locator(W + ".bubble")).to_have_text(["Do you have oat milk?", "We do!"])
    assert await chat_id(page) == chat

    tab = await opened(browser, site, channel, context=page.context)
    await expect(tab.locator(W + ".bubble")).to_have_text(["Do you have oat milk?", "We do!"])
    assert await chat_id(tab) == chat
    await say(site, courier, channel["uuid"], chat, "Anything else?")
    for each in (page, tab):  # every socket of the chat gets it
        await expect(each.locator(W + ".bubble")).to_have_text(["Do you have oat milk?", "We do!", "Anything else?"])
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", chat)] == ["Do you have oat milk?"]


async def test_scrolling_up_pages_through_the_history_25_at_a_time(site, browser, channel, courier, rows):
    page = await opened(browser, site, channel)
    chat = await chat_id(page)
    contact_id = rows.one("SELECT contact_id FROM contacts_contacturn WHERE path = %s", chat)[0]
    start = datetime.now(timezone.utc) - timedelta(days=1)
    for i in range(60):
        rows.msg(contact_id, f"old {i}", direction="I" if i % 2 else "O", created_on=start + timedelta(minutes=i))
    await page.reload()
    messages = page.locator(W + ".messages .msg")
    await expect(messages).to_have_count(25)
    await expect(messages.last).to_contain_text("old 59")
    for count in (50, 60):
        await page.locator(W + ".thread").evaluate("thread => { thread.scrollTop = 0 }")
        await expect(messages).to_have_count(count)
    await expect(messages.first).to_contain_text("old 0")
    await expect(page.locator(W + ".older")).to_have_text("Start of conversation")


async def test_offline_typing_is_queued_and_sent_once_in_order(site, browser, channel, courier):
    page = await opened(browser, site, channel)
    chat = await chat_id(page)
    await page.context.set_offline(True)
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "offline")
    await expect(page.locator(W + ".offline")).to_be_visible()  # said quietly, in the panel
    for text in ("first", "second", "third"):
        await write(page, text)
    sent = page.locator(W + ".msg.in")
    await expect(sent).to_have_count(3)
    for i in range(3):
        await expect(sent.nth(i)).to_have_attribute("data-status", "sending")
    assert courier.of_type("msg_in", chat) == []

    await page.context.set_offline(False)
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "online")
    for i in range(3):
        await expect(sent.nth(i)).to_have_attribute("data-status", "sent")
    await expect(sent.nth(2).locator(".state")).to_have_text("Sent")
    await courier.wait_for(lambda: len(courier.of_type("msg_in", chat)) == 3)
    await page.wait_for_timeout(500)  # nothing more arrives late
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", chat)] == ["first", "second", "third"]
    await expect(page.locator(W + ".offline")).to_be_hidden()


async def test_chip_restarted_under_the_widget(site, browser, channel, courier):
    page = await opened(browser, site, channel)
    chat = await chat_id(page)
    attempts = []
    page.on("websocket", lambda ws: attempts.append(ws.url))
    await site.stop_chip()  # sockets closed with 1001, then nothing listens
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "offline")
    await expect(page.locator(W + ".status")).to_have_text("Offline")
    # backoff: waits drawn from [0.5, 1], [1, 2], [2, 4], [4, 8] s: two or three tries in 7 s, not seven
    await page.wait_for_timeout(7000)
    assert 2 <= len(attempts) <= 3, attempts
    await write(page, "are you there?")
    await expect(page.locator(W + ".msg.in")).to_have_attribute("data-status", "sending")

    await site.start_chip()
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "online", timeout=15000)
    await expect(page.locator(W + ".msg.in")).to_have_attribute("data-status", "sent")
    assert await chat_id(page) == chat  # the same chat, resumed
    await say(site, courier, channel["uuid"], chat, "Yes, back now")
    await expect(page.locator(W + ".bubble")).to_have_text(["are you there?", "Yes, back now"])
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", chat)] == ["are you there?"]


async def test_a_message_both_pushed_and_in_the_history_shows_once(site, browser, channel, courier):
    page = await opened(browser, site, channel)
    context, chat = page.context, await chat_id(page)
    await page.close()  # no socket: what Courier sends waits in the outbox
    for text in ("one", "two"):
        await say(site, courier, channel["uuid"], chat, text)
    # the next visit gets both pushed from the outbox and both in its history page
    page = await opened(browser, site, channel, context=context)
    await expect(page.locator(W + ".bubble")).to_have_text(["one", "two"])
    await courier.wait_for(lambda: len(courier.of_type("msg_status", chat)) == 2)
    await page.wait_for_timeout(300)
    await expect(page.locator(W + ".bubble")).to_have_text(["one", "two"])


async def test_a_refused_message_shows_failed_and_can_be_retried(site, browser, channel, courier):
    await site.stop_chip()
    await site.start_chip(max_text_length=20)
    page = await opened(browser, site, channel)
    chat = await chat_id(page)
    await write(page, "short one")
    await write(page, "this one is far too long for this chip")
    sent = page.locator(W + ".msg.in")
    await expect(sent.nth(0)).to_have_attribute("data-status", "sent")
    await expect(sent.nth(1)).to_have_attribute("data-status", "failed")
    await expect(sent.nth(1).locator(".state")).to_have_text("Not sent")
    await expect(page.locator(W + ".notice")).to_have_text("That message is too long to send.")

    await site.stop_chip()
    await site.start_chip()
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "online", timeout=15000)
    await sent.nth(1).locator(".retry").click()
    await expect(sent.nth(1)).to_have_attribute("data-status", "sent")
    await courier.wait_for(lambda: len(courier.of_type("msg_in", chat)) == 2)
    assert [e["msg"]["text"] for e in courier.of_type("msg_in", chat)] == [
        "short one",
        "this one is far too long for this chip",
    ]


async def test_attachments_by_type_quick_replies_and_text_kept_as_text(site, browser, channel, courier):
    page = await opened(browser, site, channel)
    chat = await chat_id(page)
    attachments = [
        f"image/png:{site.media('photo.png')}",
        f"audio/wav:{site.media('voice.wav')}",
        f"video/mp4:{site.media('clip.wav')}",
        f"application/pdf:{site.media('menu.pdf')}",
        "geo:-1.9441,30.0619",
        "image/png:javascript:alert(1)",
    ]
    await say(
        site,
        courier,
        channel["uuid"],
        chat,
        "<b>Hi</b> see https://example.com/menu?day=1. Or javascript:alert(2)",
        attachments=attachments,
        quick_replies=["Yes", "No"],
    )
    msg = page.locator(W + ".msg.out")
    bubble = msg.locator(".bubble")
    await expect(bubble).to_have_text("<b>Hi</b> see https://example.com/menu?day=1. Or javascript:alert(2)")
    await expect(bubble.locator("b")).to_have_count(0)
    await expect(bubble.locator("a")).to_have_count(1)
    await expect(bubble.locator("a")).to_have_attribute("href", "https://example.com/menu?day=1")
    await expect(bubble.locator("a")).to_have_attribute("rel", "noopener noreferrer nofollow")

    image = msg.locator(".image-button")
    await expect(image.locator("img")).to_have_attribute("src", site.media("photo.png"))
    await expect(msg.locator("audio")).to_have_attribute("src", site.media("voice.wav"))
    await expect(msg.locator("audio")).to_have_attribute("controls", "")
    await expect(msg.locator("video")).to_have_attribute("src", site.media("clip.wav"))
    document = msg.locator("a.file:not(.geo)")
    await expect(document).to_have_attribute("href", site.media("menu.pdf"))
    await expect(document).to_have_attribute("download", "menu.pdf")
    await expect(msg.locator("a.geo")).to_have_attribute(
        "href", "https://www.openstreetmap.org/?mlat=-1.9441&mlon=30.0619#map=16/-1.9441/30.0619"
    )
    await expect(msg.locator("span.file")).to_have_text("javascript:alert(1)")  # shown, never a link or image
    assert (
        await page.evaluate("""[...document.querySelector('chip-widget').shadowRoot.querySelectorAll('[href],[src]')]
        .filter(n => /^javascript:/i.test(n.getAttribute('href') || n.getAttribute('src'))).length""")
        == 0
    )

    # the image opens in a lightbox; Escape closes it and puts the focus back
    await image.click()
    lightbox = page.locator(W + ".lightbox")
    await expect(lightbox).to_be_visible()
    await expect(lightbox.locator("img")).to_have_attribute("src", site.media("photo.png"))
    await expect(lightbox.locator(".icon-button")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(lightbox).to_be_hidden()
    await expect(image).to_be_focused()
    await expect(page.locator(W + ".panel")).to_be_visible()

    quick = page.locator(W + ".quick button")
    await expect(quick).to_have_text(["Yes", "No"])
    await quick.filter(has_text="Yes").click()
    await expect(page.locator(W + ".msg.in .bubble")).to_have_text(["Yes"])
    await expect(quick).to_have_count(0)
    await courier.wait_for(lambda: courier.of_type("msg_in", chat))
    assert courier.of_type("msg_in", chat)[0]["msg"]["text"] == "Yes"


async def test_staff_and_bot_messages_show_who_wrote_them(site, browser, channel, courier, rows):
    user_id = rows.user(first="Sam", last="Okafor", avatar="avatar.png", org_id=channel["org_id"])
    page = await opened(browser, site, channel, title="Nyaruka Coffee", logo=site.media("logo.png"))
    chat = await chat_id(page)
    await say(site, courier, channel["uuid"], chat, "I'm the bot")
    await say(site, courier, channel["uuid"], chat, "I'm Sam", user_id=user_id)
    bot, staff = page.locator(W + ".msg.out:not(.welcome)").nth(0), page.locator(W + ".msg.staff")
    await expect(bot.locator(".sender")).to_have_text("Nyaruka Coffee")
    await expect(bot.locator("img.avatar")).to_have_attribute("src", site.media("logo.png"))
    await expect(staff.locator(".sender")).to_have_text("Sam Okafor")
    await expect(staff.locator("img.avatar")).to_have_attribute("src", site.media("avatar.png"))
    # timestamps in the visitor's locale (en-US here: 12-hour clock)
    await expect(staff.locator("time")).to_have_text(re.compile(r"^\d{1,2}:\d{2}\s?[AP]M$"))


async def test_unread_badge_and_title_counter_while_closed(site, browser, channel, courier):
    page = await browser.page()
    await page.goto(site.page(channel["uuid"], page_title="Our shop"))
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "online")
    chat = await chat_id(page)
    for text in ("one", "two"):
        await say(site, courier, channel["uuid"], chat, text)
    launcher = page.locator(W + ".launcher")
    await expect(page.locator(W + ".badge")).to_have_text("2")
    await expect(page).to_have_title("(2) Our shop")
    await expect(launcher).to_have_attribute("aria-label", "Open chat, 2 unread")
    await launcher.click()
    await expect(page).to_have_title("Our shop")
    await expect(page.locator(W + ".badge")).to_be_hidden()
    await expect(launcher).to_have_attribute("aria-label", "Open chat")


async def test_email_is_checked_before_it_is_sent(site, browser, channel, rows):
    page = await opened(browser, site, channel)
    chat = await chat_id(page)
    email = page.locator(W + ".email input")
    await email.fill("ann@")
    await page.locator(W + ".email button").click()
    await expect(page.locator(W + ".email-error")).to_have_text(
        "Please enter a valid email address, like name@example.com."
    )
    await expect(email).to_have_attribute("aria-invalid", "true")
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", chat) == (None,)
    await email.fill("ann@example.com")
    await email.press("Enter")
    await expect(page.locator(W + ".email button")).to_have_text("Saved")
    await expect(page.locator(W + ".email-error")).to_be_hidden()
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", chat) == ("ann@example.com",)
    await page.reload()
    await expect(page.locator(W + ".email input")).to_have_value("ann@example.com")

    # Courier empties the URN's display on each msg_in (protocol §3); chip keeps the address apart,
    # so another of the visitor's sockets (another device) still resumes the chat with it
    rows.one("UPDATE contacts_contacturn SET display = '' WHERE path = %s", chat)
    await write(page, "my address is saved, right?")
    await expect(page.locator(W + ".msg.in")).to_have_attribute("data-status", "sent")
    other = Visitor(await websocket_connect(site.chip_url.replace("http", "ws", 1) + f"/wc/connect/{channel['uuid']}/"))
    try:
        assert await other.start(chat) == {"type": "chat_resumed", "chat_id": chat, "email": "ann@example.com"}
    finally:
        other.close()


async def test_usable_by_keyboard_alone_with_focus_kept_in_the_panel_and_news_announced(
    site, browser, channel, courier
):
    page = await browser.page()
    await page.goto(site.page(channel["uuid"]))
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "online")
    launcher = page.locator(W + ".launcher")
    await page.keyboard.press("Tab")  # the widget is the page's only focusable thing
    await expect(launcher).to_be_focused()
    await page.keyboard.press("Enter")
    textarea = page.locator(W + "textarea")
    await expect(textarea).to_be_focused()
    await page.keyboard.type("typed, not clicked")
    await page.keyboard.press("Enter")
    await expect(page.locator(W + ".msg.in")).to_have_attribute("data-status", "sent")

    inside = (
        "() => { const root = document.querySelector('chip-widget').shadowRoot;"
        " return !!root.activeElement && root.querySelector('.panel').contains(root.activeElement) }"
    )
    for _ in range(12):  # round and round the panel's controls, never out of it
        await page.keyboard.press("Tab")
        assert await page.evaluate(inside)
    for _ in range(12):
        await page.keyboard.press("Shift+Tab")
        assert await page.evaluate(inside)

    await say(site, courier, channel["uuid"], await chat_id(page), "Hello from the team")
    await expect(page.locator(W + "[aria-live=polite]")).to_have_text("Chat: Hello from the team")
    await page.keyboard.press("Escape")
    await expect(page.locator(W + ".panel")).to_be_hidden()
    await expect(launcher).to_be_focused()


async def test_a_blocked_chat_says_so_and_stops_reconnecting(site, browser, channel, courier, rows):
    page = await opened(browser, site, channel)
    chat = await chat_id(page)
    rows.one(
        "UPDATE contacts_contact SET status = 'B' FROM contacts_contacturn u"
        " WHERE u.contact_id = contacts_contact.id AND u.path = %s RETURNING contacts_contact.id",
        chat,
    )
    attempts = []
    page.on("websocket", lambda ws: attempts.append(ws.url))
    await page.reload()  # the widget resumes its stored chat, which chip refuses
    await expect(page.locator(W + ".notice")).to_have_text("This chat is closed.")
    await page.wait_for_timeout(4000)  # a refused start_chat of another kind is retried within 1 s
    assert len(attempts) == 1, attempts
    await expect(page.locator(W + ".notice")).to_be_visible()
