"""Onboarding (/start): privacy consent, role, region — in the platform's language.

```mermaid
flowchart LR
    start[/start PAYLOAD/] --> consent[consent, in the language the platform reports]
    consent -- another language --> consent
    consent -- agree --> role --> region --> menu
    consent -- decline --> public[tips and silent-alarm guide only]
```

The greeting and the privacy notice come in the language the platform reports (Telegram's
`language_code`; the deployment's default on Matrix and the terminal). Ten languages do not
fit under one question: where the screen speaks German, English or Polish — where most
people land — the other two of them are one tap away, and every language two taps away
behind "🌐". Nothing but the user id and the language is stored before the person has
agreed.
"""

from __future__ import annotations

from typing import Any

from bot.core import forms
from bot.core.context import Context
from bot.core.events import Choice
from bot.core.forms import Answers, Form, Input, Step
from bot.core.i18n import LANGUAGES
from bot.core.router import Router

router = Router("onboarding")

# Deep-link payloads (Telegram /start PAYLOAD, !start PAYLOAD, --start PAYLOAD).
ROLE_ALIASES = {
    "taxi": "taxi_driver",
    "truck": "truck_driver",
    "lkw": "truck_driver",
    "tir": "truck_driver",
    "dispatcher": "dispatcher",
    "dispo": "dispatcher",
    "company": "haulage_company",
    "spedition": "haulage_company",
    "station": "station_staff",
    "tankstelle": "station_staff",
    "police": "police_officer",
    "polizei": "police_officer",
}
# Payloads that open a public guide directly, onboarding or not.
GUIDE_PAYLOADS = {"alarm": "alarm", "tips": "tips"}
# Languages offered at once beside a screen in one of them; every language is behind "🌐".
QUICK_LANGUAGES = ("de", "en", "pl")
# `lang:~` opens the list of every language.
ALL_LANGUAGES = "~"


def _consented(answers: Answers) -> bool:
    return answers.get("consent") == "yes"


def language_switches(context: Context, then: str = "") -> list[Choice]:
    """The quick languages beside a screen in one of them, and "🌐" for all languages;
    `then` is a choice to show again after switching."""
    suffix = f"|{then}" if then else ""
    quick = QUICK_LANGUAGES if context.lang in QUICK_LANGUAGES else ()
    return [
        *(
            Choice(f"lang:{code}{suffix}", label)
            for code, label in context.content.options(context.lang, "languages")
            if code in quick and code != context.lang
        ),
        Choice(f"lang:{ALL_LANGUAGES}{suffix}", context.t("onboarding.more_languages")),
    ]


def show_languages(context: Context, then: str = "") -> None:
    """Every language but the screen's, each named in itself; the open question waits
    until one is picked (a number typed now picks a language)."""
    suffix = f"|{then}" if then else ""
    context.say(
        context.t("onboarding.language"),
        choices=[
            Choice(f"lang:{code}{suffix}", label)
            for code, label in context.content.options(context.lang, "languages")
            if code != context.lang and code in LANGUAGES
        ],
    )
    context.question_shown = True


def _privacy_values(context: Context) -> dict[str, Any]:
    settings = context.settings
    return {
        "operator": settings.bot.operator,
        "contact": settings.bot.privacy_contact,
        "days": settings.retention.conversation_days,
    }


async def _finish(context: Context, answers: Answers) -> None:
    """Store the profile if the person agreed; otherwise keep only id and language."""
    then = str(answers.get("_then") or "")
    if not _consented(answers):
        context.user.consent_at = None
        context.say(context.t("onboarding.declined"))
        return
    context.user.consent_at = context.now()
    context.user.role = answers.get("role")
    context.user.region = answers.get("region")
    await context.audit("consent_given")
    context.say(context.t("onboarding.welcome"))
    if then:
        await context.run_command(then)
    else:
        await context.run_command("menu")


FORM = Form(
    name="onb",
    texts="onboarding",
    review=False,
    optional_for_staff=True,
    steps=(
        Step(
            "consent",
            Input.CHOICE,
            "onboarding.privacy",
            options="consent",
            extra=language_switches,
            stays=True,
        ),
        Step("role", Input.CHOICE, "onboarding.role", options="roles", when=_consented),
        Step("region", Input.CHOICE, "onboarding.region", options="regions", when=_consented),
    ),
    on_submit=_finish,
    question_values=_privacy_values,
)
forms.register(router, FORM)


async def begin(context: Context, then: str = "", role: str | None = None) -> None:
    """Start onboarding; `then` names a command to run once it is done."""
    answers: Answers = {"_then": then}
    if role:
        answers["role"] = role
    await forms.start(context, FORM, answers)


@router.command("start")
async def start(context: Context) -> None:
    """Welcome; a deep-link payload preselects a role or opens a guide."""
    payload = context.event.args.strip().lower()
    if payload in GUIDE_PAYLOADS:
        await context.run_command(GUIDE_PAYLOADS[payload])
        return
    role = ROLE_ALIASES.get(payload)
    if context.consented:
        if role:
            context.user.role = role
        context.end_flow()
        context.say(context.t("onboarding.welcome_back"))
        await context.run_command("menu")
        return
    context.say(context.t("onboarding.hello", emergency=context.settings.bot.emergency_number))
    await begin(context, role=role)


@router.choice("lang")
async def switch_language(context: Context) -> None:
    """A language button: the person reads on in that language (an open question is shown
    again by the Core); `lang:pl|tip:…` shows that choice again in the new language."""
    code, _, then = context.event.choice.removeprefix("lang:").partition("|")
    if code == ALL_LANGUAGES:
        show_languages(context, then)
        return
    if code not in LANGUAGES:
        context.toast(context.t("core.stale_choice"))
        return
    context.user.language = code
    if then and not then.startswith("lang:"):
        await context.run_choice(then)
    elif not context.flow:
        await context.run_command("menu")


@router.on_gate
async def gate(context: Context) -> None:
    """Someone who has not agreed yet asked for something that stores data."""
    event = context.event
    then = event.command if event.command else ""
    if context.flow == FORM.name:
        context.say(context.t("onboarding.finish_first"))
        await forms.handle(context, FORM)
        return
    context.say(context.t("onboarding.needed_first"))
    await begin(context, then=then)
