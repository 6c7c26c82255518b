"""A person chatting through the terminal transport, for tests that read like a dialogue."""

from __future__ import annotations

from dataclasses import replace

from bot.core.app import Core
from bot.core.events import Event, EventKind, Location, Reply
from bot.transports.console import ConsoleChat, render


class Chat:
    """Sends what a person types or presses and keeps what the bot answered."""

    def __init__(self, core: Core, user: str, language_hint: str = "") -> None:
        self.core = core
        self.user = user
        # The language the platform reports for the person (Telegram's language_code).
        self.language_hint = language_hint
        self.console = ConsoleChat(core, user, lambda _text: None)
        self.replies: list[Reply] = []

    async def handle(self, event: Event) -> list[Reply]:
        self.replies = await self.core.handle(replace(event, language_hint=self.language_hint))
        return self.replies

    async def send(self, line: str) -> list[Reply]:
        """Type a line (text, /command, /location, /photo) into the terminal."""
        return await self.handle(await self.console.event_for(line))

    async def press(self, label_part: str) -> list[Reply]:
        """Press the button whose label contains `label_part` (as on Telegram)."""
        choice = self.find(label_part)
        event = Event(
            "console",
            self.user,
            self.user,
            EventKind.CHOICE,
            choice=choice,
            sender_handle=self.user,
        )
        return await self.handle(event)

    async def press_id(self, choice_id: str) -> list[Reply]:
        event = Event(
            "console", self.user, self.user, EventKind.CHOICE, choice=choice_id,
            sender_handle=self.user,
        )  # fmt: skip
        return await self.handle(event)

    async def share_location(self, latitude: float, longitude: float) -> list[Reply]:
        base = Event("console", self.user, self.user, EventKind.LOCATION)
        return await self.handle(replace(base, location=Location(latitude, longitude)))

    def find(self, label_part: str) -> str:
        for reply in reversed(self.replies):
            for choice in reply.choices:
                if label_part.casefold() in choice.label.casefold():
                    return choice.id
        raise AssertionError(f"no button {label_part!r} in:\n{self.screen}")

    @property
    def screen(self) -> str:
        """What the person sees now, rendered as in the terminal."""
        return "\n\n".join(render(reply) for reply in self.replies)

    @property
    def labels(self) -> list[str]:
        return [choice.label for reply in self.replies for choice in reply.choices]

    async def onboard(
        self, language: str = "Deutsch", role: str = "Lkw", region: str = "Köln"
    ) -> None:
        """/start, then (when another language is wanted) switch the language — one tap
        beside the German screen, or two through "🌐" — consent, role and region."""
        await self.send("/start")
        if language != "Deutsch" and language.casefold() not in " ".join(self.labels).casefold():
            await self.press("🌐")
        if language.casefold() in " ".join(self.labels).casefold():
            await self.press(language)
        await self.press("✅")
        await self.press(role)
        await self.press(region)
