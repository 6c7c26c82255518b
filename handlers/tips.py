"""Prevention tips per role (/tips) and the taxi silent-alarm guide (/alarm).

Both are public: they work before onboarding, because a taxi driver in trouble has no
time for menus. /alarm opens the guide in one message; police officers get the card
that teaches them to recognise the alarm first.
"""

from __future__ import annotations

from functools import lru_cache

from bot.core.context import Context
from bot.core.events import Choice, Reply
from bot.core.i18n import LANGUAGES, Content, Topic
from bot.core.intents import mentions
from bot.core.router import Router
from handlers.onboarding import language_switches

router = Router("tips")

TAXI_GUIDE = "silent_alarm_taxi"
RECOGNISE = "silent_alarm_recognise"


def _topics_for(context: Context, everything: bool) -> list[Topic]:
    topics = [context.content.topic(context.lang, tid) for tid in context.content.topic_ids]
    role = context.user.role
    if everything or not role:
        return topics
    return [topic for topic in topics if role in topic.roles]


def show_card(context: Context, topic_id: str, index: int) -> Reply:
    """One card of a topic, with next/back and the source on the last card."""
    topic = context.content.topic(context.lang, topic_id)
    index = max(0, min(index, len(topic.cards) - 1))
    text = topic.cards[index]
    if index == len(topic.cards) - 1:
        reviewed = context.content.format_date_text(context.lang, topic.reviewed)
        text += "\n\n" + context.t("tips.footer", source=topic.source, reviewed=reviewed)
    choices = []
    if index + 1 < len(topic.cards):
        choices.append(Choice(f"tip:{topic_id}:{index + 1}", context.t("tips.next")))
    if index > 0:
        choices.append(Choice(f"tip:{topic_id}:{index - 1}", context.t("tips.previous")))
    if topic_id == TAXI_GUIDE:
        choices.append(Choice(f"tip:{RECOGNISE}:0", context.t("tips.recognise")))
    elif topic_id == RECOGNISE:
        choices.append(Choice(f"tip:{TAXI_GUIDE}:0", context.t("tips.for_taxi")))
    choices.append(Choice("tip:~all", context.t("tips.topics")))
    choices.append(Choice("/menu", context.t("menu.open")))
    if not context.consented:
        # Someone who has not chosen a language (a deep link, a fresh terminal): one tap.
        choices.extend(language_switches(context, then=f"tip:{topic_id}:{index}"))
    return context.say(
        text, title=f"{topic.title} ({index + 1}/{len(topic.cards)})", choices=choices
    )


def show_topics(context: Context, everything: bool = False) -> Reply:
    topics = _topics_for(context, everything)
    choices = [Choice(f"tip:{topic.id}:0", topic.title) for topic in topics]
    if not everything and len(topics) < len(context.content.topic_ids):
        choices.append(Choice("tip:~all", context.t("tips.all")))
    choices.append(Choice("/menu", context.t("menu.open")))
    return context.say(context.t("tips.choose"), title=context.t("tips.title"), choices=choices)


@router.command("tips", "tipps", "porady", takes_text=True, rank=2)
async def tips(context: Context) -> None:
    """The topics of the person's role first; all topics one tap away. Asked with words
    ("Wie schütze ich meine Plane?"), the topic those words name."""
    found = topic_named(context, context.event.args)
    if found:
        show_card(context, found, 0)
    else:
        show_topics(context)


@router.command("alarm", "stiller_alarm", rank=2)
async def alarm(context: Context) -> None:
    """The silent-alarm guide, at once."""
    first = RECOGNISE if context.user.role == "police_officer" else TAXI_GUIDE
    show_card(context, first, 0)


@router.choice("tip")
async def pressed(context: Context) -> None:
    """A topic, a page, or the list of all topics."""
    _, topic_id, page = [*context.event.choice.split(":"), "", ""][:3]
    # Paging through the topics and cards turns the pressed message's page.
    if topic_id == "~all":
        show_topics(context, everything=True).in_place = True
    elif topic_id in context.content.topic_ids and page.isascii() and page.isdigit():
        show_card(context, topic_id, int(page[:4])).in_place = True
    else:
        context.say(context.t("core.stale_choice"))
        show_topics(context)


def topic_named(context: Context, text: str) -> str:
    """The topic whose keyword `text` names (the longest keyword wins; of equally long
    ones, the person's language first), or ""."""
    if not text.strip():
        return ""
    for keyword, topic_id in _keywords(context.content, context.lang):
        if mentions(text, keyword):
            return topic_id
    return ""


@lru_cache(maxsize=len(LANGUAGES) * 2)
def _keywords(content: Content, lang: str) -> tuple[tuple[str, str], ...]:
    """Every keyword of three letters or more with its topic, in the order `topic_named`
    tries them: the longest first, then `lang`, then the others; then as the content
    lists them. Built once per language, not for every message."""
    order = (lang, *[other for other in LANGUAGES if other != lang])
    found = [
        (-len(keyword), rank, index, position, keyword, topic_id)
        for rank, code in enumerate(order)
        for index, topic_id in enumerate(content.topic_ids)
        for position, keyword in enumerate(content.topic(code, topic_id).keywords)
        if len(keyword) >= 3
    ]
    return tuple((keyword, topic_id) for *_, keyword, topic_id in sorted(found))


@router.text
async def topic_by_keyword(context: Context) -> bool:
    """'Planen', 'tarpaulin', 'plandeka', 'Tankbetrug' open the matching topic."""
    found = topic_named(context, context.event.text)
    if found:
        show_card(context, found, 0)
    return bool(found)
