"""The demo page in a real browser: headless Chromium (Debian's package) driven by Playwright,
against the same wiring `make demo` runs (demo/runner.py) on the test's servers."""

import os
from datetime import datetime, timedelta, timezone

import pytest

from demo.embedded import free_port
from demo.runner import Demo

CHROMIUM = os.environ.get("CHIP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")


@pytest.fixture
async def demo(pg_url, redis_url, rows):
    """The demo on a free port; `rows` empties the tables afterwards."""
    port = free_port()
    running = await Demo(pg_url, redis_url, port, address="127.0.0.1", host="127.0.0.1", pause=0.05).start()
    yield running
    await running.stop()


@pytest.fixture
async def page():
    from playwright.async_api import async_playwright
    playwright = await async_playwright().start()
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = await browser.new_page(viewport={"width": 1280, "height": 860})
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    yield page
    await browser.close()
    await playwright.stop()
    assert not errors, errors


async def loaded(locator) -> bool:
    """The image really rendered (its URL answered with an image)."""
    return await locator.evaluate("img => img.complete && img.naturalWidth > 0")


async def test_chat_end_to_end_in_a_browser(demo, page, rows, tmp_path):
    from playwright.async_api import expect

    await page.goto(demo.page_url)
    widget = page.locator(".chip-widget")
    await expect(widget).to_have_attribute("data-state", "online")
    await expect(page.locator(".chip-status")).to_have_text("Online")

    await page.fill(".chip-input", "Hi! Do you have oat milk?")
    await page.press(".chip-input", "Enter")
    await expect(page.locator(".chip-msg-in .chip-bubble")).to_have_text(["Hi! Do you have oat milk?"])

    # the welcome flow: text with an image shown inline and a PDF as a link, then quick replies
    welcome = page.locator(".chip-msg-out").first
    await expect(welcome.locator(".chip-bubble")).to_contain_text("welcome to Nyaruka Coffee")
    await expect(welcome.locator(".chip-sender")).to_have_text("Nyaruka Coffee")
    image = welcome.locator("img.chip-image")
    await expect(image).to_be_visible()
    assert await loaded(image)
    await expect(welcome.locator("a.chip-attachment-file")).to_have_attribute("href", f"{demo.public_url}"
                                                                           "/wc/demo/static/files/menu.pdf")
    quick = page.locator(".chip-quick-reply")
    await expect(quick).to_have_text(["Opening hours", "Today's menu", "Talk to a person"])

    # a quick reply is sent as the visitor's text; the staff user answers with name and avatar
    await quick.filter(has_text="Talk to a person").click()
    await expect(page.locator(".chip-msg-in .chip-bubble").last).to_have_text("Talk to a person")
    await expect(quick).to_have_count(0)
    staff = page.locator(".chip-msg-staff")
    await expect(staff.locator(".chip-sender")).to_have_text("Sam Okafor")
    avatar = staff.locator("img.chip-avatar")
    await expect(avatar).to_have_attribute("src", f"{demo.public_url}/wc/demo/media/avatars/sam.svg")
    assert await loaded(avatar)

    # an address chip refuses comes back as an `error` event the visitor sees; a good one is stored
    await page.fill(".chip-email-input", "not an address")
    await page.click(".chip-email-save")
    await expect(page.locator(".chip-notice")).to_contain_text("Please check your email address")
    await page.fill(".chip-email-input", "ann@example.com")
    await page.click(".chip-email-save")
    await expect(page.locator(".chip-email-save")).to_have_text("Saved ✓")
    chat_id = await page.evaluate("Object.keys(localStorage).map(k => localStorage[k])[0]")
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", chat_id) == ("ann@example.com",)

    shown = await page.locator(".chip-msg").count()
    assert shown == 5
    await page.screenshot(path=str(tmp_path / "chat.png"))
    # every reply was acked, so Courier heard `delivered` for each outgoing row
    assert await wait_for_rows(page, rows, "SELECT count(*) FROM msgs_msg WHERE direction = 'O' AND status = 'D'", 3)

    # a reload resumes the same chat and shows its history, each message once
    await page.reload()
    await expect(widget).to_have_attribute("data-state", "online")
    await expect(page.locator(".chip-msg")).to_have_count(shown)
    await expect(page.locator(".chip-msg-staff .chip-sender")).to_have_text("Sam Okafor")
    await expect(page.locator(".chip-msg-out").first.locator("img.chip-image")).to_be_visible()
    await expect(page.locator(".chip-email-input")).to_have_value("ann@example.com")
    assert await page.evaluate("Object.keys(localStorage).map(k => localStorage[k])[0]") == chat_id
    await page.screenshot(path=str(tmp_path / "resumed.png"))


async def test_scrolling_up_pages_through_history(demo, page, rows):
    from playwright.async_api import expect

    await page.goto(demo.page_url)
    await expect(page.locator(".chip-widget")).to_have_attribute("data-state", "online")
    chat_id = await page.evaluate("Object.keys(localStorage).map(k => localStorage[k])[0]")
    contact_id = rows.one("SELECT contact_id FROM contacts_contacturn WHERE path = %s", chat_id)[0]
    start = datetime.now(timezone.utc) - timedelta(days=1)
    for i in range(60):  # older than one page of 25, and than two
        rows.msg(contact_id, f"old {i}", direction="I" if i % 2 else "O", created_on=start + timedelta(minutes=i))

    await page.reload()
    messages = page.locator(".chip-msg")
    await expect(messages).to_have_count(25)
    await expect(messages.last).to_contain_text("old 59")
    for count in (50, 60):
        await page.locator(".chip-thread").evaluate("thread => { thread.scrollTop = 0 }")
        await expect(messages).to_have_count(count)
    await expect(messages.first).to_contain_text("old 0")
    await expect(page.locator(".chip-older")).to_have_text("Start of conversation")


async def wait_for_rows(page, rows, sql, expected, timeout=5.0) -> bool:
    for _ in range(int(timeout / 0.1)):
        if rows.one(sql)[0] == expected:
            return True
        await page.wait_for_timeout(100)
    return False


async def test_widget_shows_a_dropped_connection_and_resumes_the_chat(demo, page):
    from playwright.async_api import expect

    await page.goto(demo.page_url)
    widget = page.locator(".chip-widget")
    await expect(widget).to_have_attribute("data-state", "online")
    chat_id = await page.evaluate("Object.keys(localStorage).map(k => localStorage[k])[0]")
    await page.fill(".chip-input", "hello")
    await page.press(".chip-input", "Enter")
    await expect(page.locator(".chip-quick-reply")).to_have_count(3)

    demo.services.registry.close_all(1001, "going away")  # what a chip restart does to sockets
    await expect(widget).to_have_attribute("data-state", "offline")
    await expect(page.locator(".chip-status")).to_contain_text("retrying in")
    await expect(page.locator(".chip-input")).to_be_disabled()
    await expect(widget).to_have_attribute("data-state", "online", timeout=10000)
    assert await page.evaluate("Object.keys(localStorage).map(k => localStorage[k])[0]") == chat_id
    await expect(page.locator(".chip-msg")).to_have_count(3)  # nothing shown twice after the resume
