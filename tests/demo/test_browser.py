"""The demo page in a real browser: headless Chromium (Debian's package) driven by Playwright,
against the same wiring `make demo` runs (demo/runner.py) on the test's servers."""

import pytest

from demo.embedded import free_port
from demo.runner import Demo
from tests.browser import chat_id, needs_chromium, screenshot

pytestmark = needs_chromium
W = "chip-widget "  # the widget's shadow root (Playwright's CSS selectors pierce it)


@pytest.fixture
async def demo(pg_url, redis_url, rows):
    """The demo on a free port; `rows` empties the tables afterwards."""
    port = free_port()
    running = await Demo(pg_url, redis_url, port, address="127.0.0.1", host="127.0.0.1", pause=0.05).start()
    yield running
    await running.stop()


@pytest.fixture
async def page(browser):
    return await browser.page()


async def loaded(locator) -> bool:
    """The image really rendered (its URL answered with an image)."""
    return await locator.evaluate("img => img.complete && img.naturalWidth > 0")


async def test_chat_end_to_end_in_a_browser(demo, page, rows, tmp_path, request):
    from playwright.async_api import expect

    await page.goto(demo.page_url)
    widget = page.locator(W + ".chip")
    await expect(widget).to_have_attribute("data-state", "online")
    await expect(page.locator(W + ".status")).to_have_text("Online")

    await page.fill(W + "textarea", "Hi! Do you have oat milk?")
    await page.press(W + "textarea", "Enter")
    await expect(page.locator(W + ".msg.in .bubble")).to_have_text(["Hi! Do you have oat milk?"])

    # the welcome flow: text with an image shown inline and a PDF as a link, then quick replies
    welcome = page.locator(W + ".msg.out").first
    await expect(welcome.locator(".bubble")).to_contain_text("welcome to Nyaruka Coffee")
    await expect(welcome.locator(".sender")).to_have_text("Nyaruka Coffee")
    image = welcome.locator(".image-button img")
    await expect(image).to_be_visible()
    assert await loaded(image)
    await expect(welcome.locator("a.file")).to_have_attribute(
        "href", f"{demo.public_url}/wc/demo/static/files/menu.pdf"
    )
    quick = page.locator(W + ".quick button")
    await expect(quick).to_have_text(["Opening hours", "Today's menu", "Talk to a person"])

    # a quick reply is sent as the visitor's text; the staff user answers with name and avatar
    await quick.filter(has_text="Talk to a person").click()
    await expect(page.locator(W + ".msg.in .bubble").last).to_have_text("Talk to a person")
    await expect(quick).to_have_count(0)
    staff = page.locator(W + ".msg.staff")
    await expect(staff.locator(".sender")).to_have_text("Sam Okafor")
    avatar = staff.locator("img.avatar")
    await expect(avatar).to_have_attribute("src", f"{demo.public_url}/wc/demo/media/avatars/sam.svg")
    assert await loaded(avatar)

    # an address that is no address is pointed out before anything is sent; a good one is stored
    await page.fill(W + ".email input", "not an address")
    await page.click(W + ".email button")
    await expect(page.locator(W + ".email-error")).to_contain_text("Please enter a valid email address")
    await page.fill(W + ".email input", "ann@example.com")
    await page.click(W + ".email button")
    await expect(page.locator(W + ".email button")).to_have_text("Saved")
    chat = await chat_id(page)
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", chat) == ("ann@example.com",)

    shown = await page.locator(W + ".msg").count()
    assert shown == 5
    await screenshot(page, request, "demo.png")
    # every reply was acked, so Courier heard `delivered` for each outgoing row
    assert await wait_for_rows(page, rows, "SELECT count(*) FROM msgs_msg WHERE direction = 'O' AND status = 'D'", 3)

    # a reload resumes the same chat and shows its history, each message once
    await page.reload()
    await expect(widget).to_have_attribute("data-state", "online")
    await expect(page.locator(W + ".msg")).to_have_count(shown)
    await expect(page.locator(W + ".msg.staff .sender")).to_have_text("Sam Okafor")
    await expect(page.locator(W + ".msg.out").first.locator(".image-button img")).to_be_visible()
    await expect(page.locator(W + ".email input")).to_have_value("ann@example.com")
    assert await chat_id(page) == chat
    await page.screenshot(path=str(tmp_path / "resumed.png"))


async def wait_for_rows(page, rows, sql, expected, timeout=5.0) -> bool:
    for _ in range(int(timeout / 0.1)):
        if rows.one(sql)[0] == expected:
            return True
        await page.wait_for_timeout(100)
    return False


async def test_widget_shows_a_dropped_connection_and_resumes_the_chat(demo, page):
    from playwright.async_api import expect

    await page.goto(demo.page_url)
    widget = page.locator(W + ".chip")
    await expect(widget).to_have_attribute("data-state", "online")
    chat = await chat_id(page)
    await page.fill(W + "textarea", "hello")
    await page.press(W + "textarea", "Enter")
    await expect(page.locator(W + ".quick button")).to_have_count(3)

    demo.services.registry.close_all(1001, "going away")  # what a chip restart does to sockets
    await expect(widget).to_have_attribute("data-state", "offline")
    await expect(page.locator(W + ".status")).to_have_text("Offline")
    await expect(page.locator(W + "textarea")).to_be_enabled()  # what the visitor types now waits in a queue
    await expect(widget).to_have_attribute("data-state", "online", timeout=10000)
    assert await chat_id(page) == chat
    await expect(page.locator(W + ".msg")).to_have_count(3)  # nothing shown twice after the resume
