"""The widget embedded with only its script tag: on a hostile page under a strict CSP, its options,
its one global and JavaScript API, a phone's viewport, the dark theme, and an axe-core scan."""

import pytest
from playwright.async_api import expect

from tests.browser import AXE, chat_id, needs_chromium, say, screenshot, until

pytestmark = needs_chromium


async def test_script_tag_alone_on_a_hostile_page_under_a_strict_csp(site, browser, channel, courier):
    page = await browser.page()
    await page.goto(site.page(channel["uuid"], name="plain.html", script=False))
    before = set(await page.evaluate("Object.keys(window)"))
    await page.goto(site.page(channel["uuid"]))
    launcher = page.locator("chip-widget .launcher")
    await expect(launcher).to_be_visible()
    await expect(page.locator("chip-widget .chip")).to_have_attribute("data-state", "online")

    # the page's `* { all: unset; font-size: 40px }` and dashed borders do not reach inside
    box = await launcher.bounding_box()
    assert (round(box["width"]), round(box["height"])) == (58, 58)
    assert box["x"] + box["width"] == pytest.approx(1280 - 20, abs=1)
    await launcher.click()
    panel = page.locator("chip-widget .panel")
    await expect(panel).to_be_visible()
    assert await panel.evaluate("p => getComputedStyle(p).width") == "380px"
    assert await page.locator("chip-widget .composer textarea").evaluate(
        "t => [getComputedStyle(t).fontSize, getComputedStyle(t).borderTopStyle]"
    ) == ["14px", "solid"]

    # and the chat works end to end: the visitor's text reaches Courier, a reply shows
    await page.fill("chip-widget textarea", "Hello from a strict page")
    await page.press("chip-widget textarea", "Enter")
    await courier.wait_for(lambda: courier.of_type("msg_in"))
    assert courier.of_type("msg_in")[0]["msg"]["text"] == "Hello from a strict page"
    await say(site, courier, channel["uuid"], await chat_id(page), "Hi! How can we help?")
    await expect(page.locator("chip-widget .msg.out .bubble")).to_have_text(["Hi! How can we help?"])

    # one global, `chip`, and not a single CSP refusal or error on the console
    assert set(await page.evaluate("Object.keys(window)")) - before == {"chip"}
    assert await page.evaluate("typeof window.chip") == "function"
    assert page.console_errors == []
    assert await page.evaluate("document.querySelectorAll('style, [style]').length") == 0


BEEPS = """window.__beeps = 0;
const start = AudioScheduledSourceNode.prototype.start;
AudioScheduledSourceNode.prototype.start = function (...args) { window.__beeps++; return start.apply(this, args); };"""


async def test_data_attributes_set_title_logo_color_side_language_welcome_open_and_sound(
    site, browser, channel, courier
):
    url = site.page(
        channel["uuid"],
        title="Nyaruka Coffee",
        logo=site.media("logo.png"),
        color="#ffcc00",
        position="left",
        lang="fr",
        welcome="Bonjour ! Posez-nous vos questions.",
        open="true",
        sound="on",
    )
    page = await browser.page()
    await page.add_init_script(BEEPS)
    await page.goto(url)
    panel = page.locator("chip-widget .panel")
    await expect(panel).to_be_visible()  # data-open
    await expect(page.locator("chip-widget .title")).to_have_text("Nyaruka Coffee")
    await expect(page.locator("chip-widget .header img.logo")).to_have_attribute("src", site.media("logo.png"))
    await expect(page.locator("chip-widget .welcome .bubble")).to_have_text("Bonjour ! Posez-nous vos questions.")
    await expect(page.locator("chip-widget textarea")).to_have_attribute("placeholder", "Écrivez un message…")
    await expect(page.locator("chip-widget .status")).to_have_text("En ligne")
    # a light accent gets dark text on it, so its contrast stays readable
    header = page.locator("chip-widget .header")
    assert await header.evaluate("h => [getComputedStyle(h).backgroundColor, getComputedStyle(h).color]") == [
        "rgb(255, 204, 0)",
        "rgb(17, 17, 17)",
    ]
    assert (await panel.bounding_box())["x"] == pytest.approx(20, abs=1)  # data-position="left"

    # data-sound: a message arriving while the panel is closed plays a short sound
    await page.locator("chip-widget .header .icon-button").click()
    await say(site, courier, channel["uuid"], await chat_id(page), "Votre commande est prête")
    await expect(page.locator("chip-widget .badge")).to_have_text("1")
    assert await page.evaluate("window.__beeps") == 1


async def test_no_sound_unless_asked(site, browser, channel, courier):
    page = await browser.page()
    await page.add_init_script(BEEPS)
    await page.goto(site.page(channel["uuid"]))
    await expect(page.locator("chip-widget .chip")).to_have_attribute("data-state", "online")
    await say(site, courier, channel["uuid"], await chat_id(page), "Hello")
    await expect(page.locator("chip-widget .badge")).to_have_text("1")
    assert await page.evaluate("window.__beeps") == 0


async def test_javascript_api_opens_closes_sets_the_email_and_reports_messages(site, browser, channel, courier, rows):
    page = await browser.page()
    await page.goto(site.page(channel["uuid"]))
    await expect(page.locator("chip-widget .chip")).to_have_attribute("data-state", "online")
    panel = page.locator("chip-widget .panel")
    await expect(panel).to_be_hidden()
    await page.evaluate(
        "window.got = []; chip('on', 'message', m => got.push(m.text));chip('on', 'open', () => got.push('opened'))"
    )
    await page.evaluate("chip('open')")
    await expect(panel).to_be_visible()
    await expect(page.locator("chip-widget textarea")).to_be_focused()
    await page.evaluate("chip('close')")
    await expect(panel).to_be_hidden()

    assert await page.evaluate("chip('setEmail', 'not an address')") is False
    assert await page.evaluate("chip('setEmail', 'ann@example.com')") is True
    chat = await chat_id(page)
    await expect(page.locator("chip-widget .email button")).to_have_text("Saved")
    assert rows.one("SELECT display FROM contacts_contacturn WHERE path = %s", chat) == ("ann@example.com",)

    await say(site, courier, channel["uuid"], chat, "Your order has shipped")
    await until(page, "got.length == 2")
    assert await page.evaluate("got") == ["opened", "Your order has shipped"]


HOOKS = """window.chip = window.chip || function () { (chip.q = chip.q || []).push(arguments); };
window.seen = [];
chip("on", "ready", (chat) => seen.push("ready " + chat.chat_id.length));
chip("on", "message", (msg) => seen.push(msg.text));
chip("open");"""


async def test_calls_made_before_the_widget_loaded_are_played_back(site, browser, channel, courier):
    page = await browser.page()
    await page.goto(site.page(channel["uuid"], hooks=HOOKS))  # the site's script runs before the widget's
    await expect(page.locator("chip-widget .panel")).to_be_visible()
    await until(page, "seen.length == 1")
    await say(site, courier, channel["uuid"], await chat_id(page), "Welcome back")
    await until(page, "seen.length == 2")
    assert await page.evaluate("seen") == ["ready 24", "Welcome back"]
    assert page.console_errors == []


async def conversation(site, courier, channel, page, user_id):
    """A few messages of every kind, for the screenshots and the accessibility scan."""
    await page.fill("chip-widget textarea", "Hi! Do you deliver to Kigali?")
    await page.press("chip-widget textarea", "Enter")
    chat = await chat_id(page)
    await say(
        site,
        courier,
        channel["uuid"],
        chat,
        "Yes, every day. Here's our menu:",
        attachments=[f"image/svg+xml:{site.media('menu.svg')}", f"application/pdf:{site.media('menu.pdf')}"],
    )
    await say(
        site,
        courier,
        channel["uuid"],
        chat,
        "Hi, I'm Sam from the team. Anything else?",
        user_id=user_id,
        quick_replies=["Opening hours", "Talk to a person"],
    )
    await expect(page.locator("chip-widget .msg.out")).to_have_count(2)
    await expect(page.locator("chip-widget .msg.in")).to_have_attribute("data-status", "sent")


async def axe_scan(page) -> list:
    """axe-core (from npm, widget/node_modules) run in the page over the widget: serious or critical findings."""
    await page.evaluate(AXE.read_text())
    found = await page.evaluate("""axe.run(document.querySelector('chip-widget'),
        {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
        .then(r => r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => [n.target, n.failureSummary])})))""")
    return [v for v in found if v["impact"] in ("serious", "critical")]


needs_axe = pytest.mark.skipif(not AXE.exists(), reason="axe-core not installed (npm ci in widget/)")


@needs_axe
@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_axe_finds_nothing_serious_open_or_closed(site, browser, channel, courier, rows, request, scheme):
    user_id = rows.user(first="Sam", last="Okafor", avatar="sam.svg", org_id=channel["org_id"])
    page = await browser.page(color_scheme=scheme)
    await page.goto(
        site.page(channel["uuid"], hostile=False, logo=site.media("logo.svg"), open="true", title="Nyaruka Coffee")
    )
    await conversation(site, courier, channel, page, user_id)
    assert await axe_scan(page) == []
    await screenshot(page, request, "widget-desktop.png" if scheme == "light" else "widget-dark.png")
    await page.evaluate("chip('close')")
    await say(site, courier, channel["uuid"], await chat_id(page), "Still there?")
    await expect(page.locator("chip-widget .badge")).to_have_text("1")
    assert await axe_scan(page) == []


async def test_dark_theme_follows_the_system(site, browser, channel):
    page = await browser.page(color_scheme="dark")
    await page.goto(site.page(channel["uuid"], open="true"))
    panel = page.locator("chip-widget .panel")
    await expect(panel).to_be_visible()
    assert await panel.evaluate("p => getComputedStyle(p).backgroundColor") == "rgb(27, 34, 32)"
    await page.emulate_media(color_scheme="light")
    await expect(panel).to_have_css("background-color", "rgb(255, 255, 255)")

    forced = await browser.page(color_scheme="light")  # data-theme wins over the system's
    await forced.goto(site.page(channel["uuid"], name="dark.html", open="true", theme="dark"))
    await expect(forced.locator("chip-widget .panel")).to_have_css("background-color", "rgb(27, 34, 32)")


async def test_full_screen_on_a_phone(site, browser, channel, courier, rows, request):
    user_id = rows.user(first="Sam", last="Okafor", avatar="sam.svg", org_id=channel["org_id"])
    page = await browser.page(
        viewport={"width": 375, "height": 720}, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    await page.goto(site.page(channel["uuid"], logo=site.media("logo.svg"), title="Nyaruka Coffee"))
    launcher = page.locator("chip-widget .launcher")
    await launcher.tap()
    panel = page.locator("chip-widget .panel")
    await expect(panel).to_be_visible()
    assert await panel.bounding_box() == {"x": 0, "y": 0, "width": 375, "height": 720}
    await expect(launcher).to_be_hidden()  # the panel's close button takes its place
    await conversation(site, courier, channel, page, user_id)
    await screenshot(page, request, "widget-mobile.png")
    await page.locator("chip-widget .header .icon-button").tap()
    await expect(panel).to_be_hidden()
    await expect(launcher).to_be_visible()
