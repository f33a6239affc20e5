"""Translations: one file per language in widget/i18n, chosen by data-lang or the browser's
languages; Arabic laid out right to left; dates in the visitor's locale."""

import json
import pathlib
import re

import pytest
from playwright.async_api import expect

from tests.browser import chat_id, needs_chromium, say, screenshot
from tests.widget.test_embedding import conversation

I18N = pathlib.Path(__file__).resolve().parents[2] / "widget" / "i18n"
W = "chip-widget "


def test_every_language_has_every_string():
    english = json.loads((I18N / "en.json").read_text())
    for code in ("es", "fr", "pt", "ar"):
        strings = json.loads((I18N / f"{code}.json").read_text())
        assert set(strings) == set(english), code
        assert all(text.strip() for text in strings.values()), code


@needs_chromium
@pytest.mark.parametrize(
    "locale, placeholder, clock",
    [
        ("es-ES", "Escribe un mensaje…", r"^\d{1,2}:\d{2}$"),
        ("fr-FR", "Écrivez un message…", r"^\d{1,2}:\d{2}$"),  # 24-hour, no AM/PM (0:54 after midnight)
        ("pt-BR", "Escreva uma mensagem…", r"^\d{1,2}:\d{2}$"),
        ("de-DE", "Write a message…", r"^\d{1,2}:\d{2}\s?[AP]M$"),  # no German: English, with English's clock
    ],
)
async def test_language_follows_the_browser(site, browser, channel, courier, locale, placeholder, clock):
    page = await browser.page(locale=locale)
    await page.goto(site.page(channel["uuid"], open="true"))
    await expect(page.locator(W + ".chip")).to_have_attribute("data-state", "online")
    await expect(page.locator(W + "textarea")).to_have_attribute("placeholder", placeholder)
    await say(site, courier, channel["uuid"], await chat_id(page), "Hola")
    await expect(page.locator(W + ".msg.out time")).to_have_text(re.compile(clock))


@needs_chromium
async def test_arabic_is_laid_out_right_to_left(site, browser, channel, courier, rows, request):
    user_id = rows.user(first="Sam", last="Okafor", avatar="sam.svg", org_id=channel["org_id"])
    page = await browser.page(locale="en-US")
    await page.goto(
        site.page(
            channel["uuid"], lang="ar", open="true", hostile=False, title="مقهى نياروكا", logo=site.media("logo.svg")
        )
    )
    root = page.locator(W + ".chip")
    await expect(root).to_have_attribute("data-state", "online")
    await expect(root).to_have_attribute("dir", "rtl")
    await expect(root).to_have_attribute("lang", "ar")
    await expect(page.locator(W + ".status")).to_have_text("متصل")
    await expect(page.locator(W + "textarea")).to_have_attribute("placeholder", "اكتب رسالة…")
    await conversation(site, courier, channel, page, user_id)
    # the visitor's own messages on the left, the team's on the right: a mirror of English
    mine = await page.locator(W + ".msg.in .bubble").bounding_box()
    theirs = await page.locator(W + ".msg.staff .bubble").bounding_box()
    assert mine["x"] < theirs["x"]
    send = await page.locator(W + ".send").bounding_box()
    typing = await page.locator(W + "textarea").bounding_box()
    assert send["x"] < typing["x"]  # the send button at the end of the line, which is the left
    await screenshot(page, request, "widget-arabic.png")
