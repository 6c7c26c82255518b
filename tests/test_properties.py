"""Random event sequences through the real Core and database never break it.

Hypothesis feeds texts (control characters, very long ones), commands known and unknown,
stale and forged choices, locations out of range, real and too-large attachments, and
events from unknown senders; pressing what the bot just showed and short scripted runs
(onboarding, a quick report) take it deep into the dialogues. After every event:

- nothing raised and nothing was logged as an error; one list of replies came back;
- the sender's dialogue state is valid: no dialogue, or a registered one, and a form's
  data names a mode and (when asking) one of its steps;
- every report the bot confirmed ("Report sent") is in the reports table.

One runtime (one database) for all examples; each example has people of its own.
PROPERTY_EXAMPLES=2000 runs a longer search than the default.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.core.events import AttachmentKind, Event, EventKind, Location, Reply
from bot.core.forms import FORMS
from bot.core.forms.model import Mode
from bot.core.i18n import LANGUAGES
from bot.core.inputs import valid_sender
from bot.runtime import Runtime
from bot.storage import repos
from bot.storage.models import Report
from bot.transports.console import ConsoleChat

ROLES = ("truck_driver", "taxi_driver", "station_staff", "police_officer", "other")
COMMANDS = (
    "start", "menu", "help", "cancel", "report", "myreports", "tips", "alarm", "alerts",
    "settings", "mydata", "delete_me", "triage", "broadcast", "broadcast_status",
    "broadcasts", "coordinators", "back", "skip", "done", "unknown", "summary", "details",
    "reports", "reply", "frobnicate", "x" * 40,
)  # fmt: skip
PREFIXES = (
    "rep:", "tri:", "ack:", "f:", "/report", "/", "onb:", "alt:", "alf:", "bcx:", "bcp:",
    "bc:", "set:", "setf:", "priv:", "tip:", "trn:", "rep:~", "rep:urgent:", "tri:1:",
    "ack:1", "tip:silent_alarm_taxi:", "/triage ", "/coordinators add console ", "lang:",
    "rep:~ok:", "rep:~open:", "repd:", "rpt:", "rrp:", "rrpf:", "/details SP-", "/reply ",
)  # fmt: skip
MODES = Mode.__args__
ONBOARD = ["/start", "lang:de", "onb:consent:yes", "onb:role:{role}", "onb:region:koeln"]
REPORT = [
    "/report", "rep:urgent:no", "Plane aufgeschlitzt", "Rastplatz A3", "rep:~skip",
    "rep:~open:details", "rep:when:now", "rep:seen:neither", "rep:~review",
    "rep:~ok:anonymous",
]  # fmt: skip
REFERENCE = re.compile(r"[A-Z]{1,6}-\d{4}-\d{6}")
SERIAL = itertools.count(1)

odd_text = st.text(
    alphabet="\x00\x07\x1b\x7f\n\t \u200b\u202e\ufeff0123456789abcÄö🙂/:", max_size=30
)
texts = st.one_of(
    st.text(max_size=40),
    odd_text,
    st.sampled_from(["Ja", "2", "1", "14:30", "24.11.2026 14:30", "verdächtig", "Köln", "²"]),
    st.builds(lambda ch, n: ch * n, st.sampled_from("x9ü🙂\x00 "), st.integers(1990, 4600)),
)
who = st.integers(0, 2)
coordinate = st.one_of(
    st.floats(-90, 90), st.floats(allow_nan=True, allow_infinity=True), st.just(1e308)
)
actions = st.one_of(
    st.tuples(st.just("text"), who, texts),
    st.tuples(st.just("command"), who, st.sampled_from(COMMANDS), st.one_of(st.just(""), texts)),
    st.tuples(st.just("choice"), who, st.sampled_from(PREFIXES), st.one_of(odd_text, texts)),
    st.tuples(st.just("press"), who, st.integers(0, 30)),
    st.tuples(st.just("press"), who, st.integers(0, 30)),
    st.tuples(st.just("number"), who, st.integers(0, 12)),
    st.tuples(st.just("replay"), who, st.integers(0, 10_000)),
    st.tuples(st.just("location"), who, coordinate, coordinate),
    st.tuples(
        st.just("file"),
        who,
        st.sampled_from(list(AttachmentKind)),
        st.binary(min_size=1, max_size=64),
    ),
    st.tuples(st.just("too_large"), who, st.sampled_from(list(AttachmentKind))),
    st.tuples(st.just("unsupported"), who),
    st.tuples(st.just("stranger"), st.text(max_size=300), texts),
    st.tuples(st.just("onboard"), who, st.sampled_from(ROLES)),
    st.tuples(st.just("report"), who),
    st.tuples(st.just("waiting"), who),
)


class Session:
    """The people of one example and what the bot last showed each of them."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        serial = next(SERIAL)
        self.people = [f"h{serial}a", f"h{serial}b", f"h{serial}k"]
        runtime.settings.console.coordinators.append(self.people[2])
        self.shown: dict[str, list[Reply]] = {}
        self.seen_choices: list[str] = []
        self.sent_titles = {runtime.content.text(lang, "report.sent_title") for lang in LANGUAGES}

    def event(self, person: str, kind: EventKind, **values: Any) -> Event:
        return Event("console", person, person, kind, **values)

    def choices(self, person: str) -> list[str]:
        return [c.id for reply in self.shown.get(person, []) for c in reply.choices]

    async def run(self, action: tuple[Any, ...]) -> None:
        target = action[1]  # one of the example's people, or a stranger's id
        person = self.people[target] if isinstance(target, int) else target
        match action:
            case ("onboard", _, role):
                for step in ONBOARD:
                    await self.step(person, step.format(role=role))
            case ("report", _):
                for step in REPORT:
                    await self.step(person, step)
            case ("waiting", _):  # open the terminal: queued reports, with triage choices
                await ConsoleChat(self.runtime.core, person, lambda _t: None).show_waiting()
            case _:
                await self.send(person, await self.build(person, action))

    async def step(self, person: str, line: str) -> None:
        if line.startswith("/"):
            name, _, args = line[1:].partition(" ")
            event = self.event(person, EventKind.COMMAND, text=line, command=name, args=args)
        elif ":" in line:
            event = self.event(person, EventKind.CHOICE, choice=line)
        else:
            event = self.event(person, EventKind.TEXT, text=line)
        await self.send(person, event)

    async def build(self, person: str, action: tuple[Any, ...]) -> Event:
        media = self.runtime.core.media
        match action:
            case ("text", _, text) | ("stranger", _, text):
                return self.event(person, EventKind.TEXT, text=text)
            case ("command", _, name, args):
                text = f"/{name} {args}".strip()
                return self.event(person, EventKind.COMMAND, text=text, command=name, args=args)
            case ("choice", _, prefix, rest):
                return self.event(person, EventKind.CHOICE, choice=prefix + rest)
            case ("press", _, index):
                shown = self.choices(person)
                choice = shown[index % len(shown)] if shown else "rep:~ok:contact"
                return self.event(person, EventKind.CHOICE, choice=choice)
            case ("number", _, index):
                return self.event(person, EventKind.TEXT, text=str(index))
            case ("replay", _, index):
                seen = self.seen_choices
                choice = seen[index % len(seen)] if seen else "tri:1:police"
                return self.event(person, EventKind.CHOICE, choice=choice)
            case ("location", _, lat, lon):
                return self.event(person, EventKind.LOCATION, location=Location(lat, lon))
            case ("file", _, kind, data):
                attachment = await media.save(data, kind, "f.bin", "application/octet-stream")
                return self.event(person, EventKind.ATTACHMENT, attachment=attachment)
            case ("too_large", _, kind):
                return self.event(person, EventKind.ATTACHMENT, attachment_error="too_large")
        return self.event(person, EventKind.UNSUPPORTED)

    async def send(self, person: str, event: Event) -> None:
        replies = await self.runtime.core.handle(event)
        assert isinstance(replies, list) and all(isinstance(r, Reply) for r in replies)
        assert valid_sender(event) or replies == []
        self.shown[person] = replies
        self.seen_choices.extend(self.choices(person))
        await self.check_state(event)
        for reply in replies:
            if reply.title in self.sent_titles:
                found = REFERENCE.search(reply.text)
                assert found is not None, reply.text
                async with self.runtime.sessions() as session:
                    stored = await session.scalar(
                        select(Report).where(Report.reference == found.group(0))
                    )
                assert stored is not None, f"{found.group(0)} confirmed but not stored"

    async def check_state(self, event: Event) -> None:
        if not valid_sender(event):
            return  # dropped unseen (handle returned [] for it)
        async with self.runtime.sessions() as session:
            user = await repos.get_user(session, event.transport, event.user_id)
            if user is None:  # an unusable id, or the person just erased their data
                return
        async with self.runtime.engine.connect() as connection:  # read only
            person = await repos.load_person(
                connection, event.transport, event.user_id, event.chat_id, "", "de"
            )
        flow, data = person.state.flow, person.state.data
        assert flow == "" or flow in self.runtime.core.flows, flow
        form = FORMS.get(flow)
        if form is None:
            return
        keys = {step.key for step in form.steps}
        assert data.get("mode") in MODES, data
        if data["mode"] == "ask":
            assert data.get("step") in keys, data
        assert all(k in keys or k.startswith("_") for k in data.get("answers", {})), data


@settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(steps=st.lists(actions, min_size=1, max_size=20))
async def test_random_events_never_break_the_core(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, steps: list[tuple[Any, ...]]
) -> None:
    caplog.clear()
    session = Session(runtime)
    with caplog.at_level(logging.WARNING, logger="bot"):
        for action in steps:
            await session.run(action)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()
