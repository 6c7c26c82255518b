"""A Telegram Bot API test server on 127.0.0.1 (aiohttp) for end-to-end tests.

Unmodified python-telegram-bot (PTB) talks to it over real HTTP::

    server = BotApiServer()
    server.add_bot("123:TEST")
    await server.start()
    app = (ApplicationBuilder().token("123:TEST").base_url(server.base_url)
           .base_file_url(server.base_file_url).build())

Three faces:

* the Bot API (``/bot{token}/{method}``, ``/file/bot{token}/{path}``) with Telegram's answer
  shapes and error descriptions;
* the fake human (`BotApiServer.send_text`, `press`, `send_photo`, ...) that injects updates;
* the reading face (`messages_to`, `wait_for_message`, `callback_answers`, ...) that records
  what the bot did.

Deliberate differences from api.telegram.org:

* Unknown method: Telegram answers ``404 Not Found``. PTB maps 404 to ``InvalidToken`` (and to
  ``EndPointNotFound`` only inside ``Bot.do_api_request``), so a method this emulator lacks
  would look like a bad token. It answers ``400 Bad Request: method not found`` instead
  (PTB: ``BadRequest``); the call log names the method.
* Webhooks may only point at loopback addresses, plain HTTP on any port is accepted, and
  URLs given as files (``sendPhoto(photo="https://...")``) are never fetched: nothing leaves
  127.0.0.1.
* Photos keep their bytes (Telegram re-encodes to JPEG); the thumbnail PhotoSize has scaled
  dimensions but the original bytes. Text length is counted in code points after parsing.
* Flood limits are sliding windows (strict: two messages to one private chat within a second
  already hit 429). ``retry_after`` is in emulated seconds: real wait = it / ``time_scale``.

Not emulated: inline mode and ``inline_message_id`` edits, media groups, forward/copy,
payments, games, chat administration, reactions, topics, business connections, method calls
in webhook replies, HTTPS certificate checks, 24-hour update expiry, callback-query expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import math
import random
import re
import secrets
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, NamedTuple, Self, TypedDict, Unpack, cast
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

JSONDict = dict[str, Any]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SEND_METHODS = frozenset(
    {"sendmessage", "sendphoto", "senddocument", "sendvoice", "sendvideo", "sendlocation"}
)
WRITE_METHODS = SEND_METHODS | {
    "editmessagetext",
    "editmessagecaption",
    "editmessagereplymarkup",
    "deletemessage",
    "answercallbackquery",
    "sendchataction",
}
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_UPLOAD = 50 * 1024 * 1024
MAX_DOWNLOAD = 20 * 1024 * 1024
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
SCOPE_TYPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_USER_COMMAND_RE = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_MENTION_RE = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}")


# --- errors -------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JSONDict:
        """The JSON body Telegram sends for this error."""
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def _entity_error(reason: str) -> ApiError:
    return _bad(f"can't parse entities: {reason}")


def _too_many(seconds: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)


def _http_error(status: int) -> ApiError:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown Error"
    return ApiError(status, phrase)


# --- public records -----------------------------------------------------------------------


@dataclass(frozen=True)
class FloodLimits:
    """Telegram's flood limits; ``time_scale`` compresses time (100 -> 3000 msg/s overall).

    The overall limit is one on bulk notifications. With ``replies_exempt_seconds`` set, a
    message to a chat whose person wrote or pressed a button within that many (emulated)
    seconds is an answer and not counted in it; 0 counts every message."""

    overall_per_second: int = 30
    private_chat_per_second: int = 1
    group_per_minute: int = 20
    time_scale: float = 1.0
    replies_exempt_seconds: float = 0.0
    # Telegram allows "short bursts" in a chat: this many messages at once, then
    # private_chat_per_second as the burst refills (a token bucket; 1: the plain limit).
    private_chat_burst: int = 1


@dataclass
class StoredFile:
    """A file the server holds (uploaded by the bot or sent by a fake human)."""

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0
    thumbnail: StoredFile | None = None

    def as_file(self) -> JSONDict:
        """The ``File`` object of getFile."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


@dataclass
class SentMessage:
    """A message the bot sent, with its later edits and deletion."""

    message_id: int
    chat_id: int
    method: str
    date: int = 0
    text: str | None = None
    caption: str | None = None
    parse_mode: str | None = None
    reply_markup: JSONDict | None = None
    reply_to_message_id: int | None = None
    file: StoredFile | None = None
    params: JSONDict = field(default_factory=dict)
    message: JSONDict = field(default_factory=dict)
    history: list[JSONDict] = field(default_factory=list)
    deleted: bool = False
    # When the server accepted it (time.perf_counter()), for measuring latency.
    received: float = 0.0

    @property
    def edited(self) -> bool:
        """Whether the message was edited at least once."""
        return bool(self.history)

    @property
    def plain_text(self) -> str | None:
        """Text or caption as the user sees it (markup parsed away)."""
        return cast("str | None", self.message.get("text", self.message.get("caption")))

    @property
    def entities(self) -> list[JSONDict]:
        """Entities of the text or caption."""
        found = self.message.get("entities", self.message.get("caption_entities", []))
        return cast("list[JSONDict]", found)

    @property
    def photo(self) -> list[JSONDict] | None:
        """PhotoSize list, if a photo."""
        return cast("list[JSONDict] | None", self.message.get("photo"))

    @property
    def document(self) -> JSONDict | None:
        """Document object, if a document."""
        return cast("JSONDict | None", self.message.get("document"))

    @property
    def voice(self) -> JSONDict | None:
        """Voice object, if a voice message."""
        return cast("JSONDict | None", self.message.get("voice"))

    @property
    def video(self) -> JSONDict | None:
        """Video object, if a video."""
        return cast("JSONDict | None", self.message.get("video"))

    @property
    def location(self) -> JSONDict | None:
        """Location object, if a location."""
        return cast("JSONDict | None", self.message.get("location"))

    @property
    def inline_buttons(self) -> list[JSONDict]:
        """All buttons of the current inline keyboard, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [button for row in rows for button in row]


@dataclass(frozen=True)
class CallbackAnswer:
    """An answerCallbackQuery call, with the query it answered."""

    query_id: str
    bot_id: int
    user_id: int
    chat_id: int | None
    message_id: int | None
    data: str | None
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None


@dataclass(frozen=True)
class ChatAction:
    """A sendChatAction call."""

    bot_id: int
    chat_id: int
    action: str
    date: float


@dataclass(frozen=True)
class ApiCall:
    """One request to the Bot API and how it was answered."""

    token: str
    method: str
    status: int
    params: JSONDict
    description: str | None


class Origin(TypedDict, total=False):
    """Who a fake-human update comes from and where it goes."""

    chat_id: int
    chat_type: str
    chat_title: str
    first_name: str
    last_name: str
    username: str
    language_code: str
    reply_to_message_id: int
    token: str


# --- text formatting ----------------------------------------------------------------------


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


class _TextBuilder:
    """Plain text plus entities with UTF-16 offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offset = 0
        self.entities: list[JSONDict] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.offset += _utf16_len(text)

    def entity(self, kind: str, start: int, extra: JSONDict | None = None) -> None:
        if self.offset > start:
            length = self.offset - start
            self.entities.append({"type": kind, "offset": start, "length": length, **(extra or {})})

    def result(self) -> tuple[str, list[JSONDict]]:
        entities = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), entities


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_ATTR_RE = re.compile(r"""([A-Za-z_-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")


class _OpenTag(NamedTuple):
    name: str
    kind: str
    extra: JSONDict
    start: int


def _html_attributes(raw: str) -> dict[str, str]:
    return {m[1].lower(): html.unescape(m[2] or m[3] or m[4] or "") for m in _ATTR_RE.finditer(raw)}


def _open_html_tag(body: str, offset: int, start: int) -> _OpenTag:
    name, _, rest = body.strip().partition(" ")
    name = name.rstrip("/").lower()
    attrs = _html_attributes(rest)
    if name not in _HTML_TAGS or (name == "span" and attrs.get("class") != "tg-spoiler"):
        raise _entity_error(f'Unsupported start tag "{name}" at byte offset {offset}')
    kind = _HTML_TAGS[name]
    extra: JSONDict = {}
    if name == "a":
        extra["url"] = attrs.get("href", "")
    elif name == "tg-emoji":
        extra["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif name == "code" and attrs.get("class", "").startswith("language-"):
        extra["language"] = attrs["class"].removeprefix("language-")
    elif name == "blockquote" and "expandable" in attrs:
        kind = "expandable_blockquote"
    return _OpenTag(name, kind, extra, start)


def _close_html_tag(name: str, stack: list[_OpenTag], out: _TextBuilder, offset: int) -> None:
    if not stack:
        raise _entity_error(f"Unexpected end tag at byte offset {offset}")
    top = stack.pop()
    if top.name != name:
        raise _entity_error(
            f'Unmatched end tag at byte offset {offset}, expected "</{top.name}>", '
            f'found "</{name}>"'
        )
    if top.kind == "code" and "language" in top.extra and stack and stack[-1].kind == "pre":
        stack[-1].extra["language"] = top.extra["language"]
        return
    if top.kind == "text_link" and not top.extra["url"]:
        return
    out.entity(top.kind, top.start, {} if top.kind == "code" else top.extra)


def parse_html(text: str) -> tuple[str, list[JSONDict]]:
    """Telegram's HTML parse mode: plain text and entities, or ApiError 400."""
    out = _TextBuilder()
    stack: list[_OpenTag] = []
    pos = 0
    while (lt := text.find("<", pos)) >= 0:
        out.add(html.unescape(text[pos:lt]))
        gt = text.find(">", lt)
        if gt < 0:
            raise _entity_error(f"Unclosed start tag at byte offset {_byte_offset(text, lt)}")
        body = text[lt + 1 : gt]
        if body.startswith("/"):
            _close_html_tag(body[1:].strip().lower(), stack, out, _byte_offset(text, lt))
        else:
            stack.append(_open_html_tag(body, _byte_offset(text, lt), out.offset))
        pos = gt + 1
    out.add(html.unescape(text[pos:]))
    if stack:
        raise _entity_error(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return out.result()


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_MARKERS = (
    ("__", "underline"),
    ("||", "spoiler"),
    ("*", "bold"),
    ("_", "italic"),
    ("~", "strikethrough"),
)


def _md_find_end(text: str, start: int, closing: str) -> int:
    """Index of the next unescaped ``closing`` at or after ``start``, or -1."""
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(closing, i):
            return i
        else:
            i += 1
    return -1


def _md_unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.S)


def _md_code(text: str, i: int, out: _TextBuilder, v2: bool) -> int:
    """Parse `code` or ```pre``` at ``i``; returns the index after it."""
    fence = "```" if text.startswith("```", i) else "`"
    end = _md_find_end(text, i + len(fence), fence) if v2 else text.find(fence, i + len(fence))
    if end < 0:
        where = _byte_offset(text, i)
        if v2:
            name = "Pre" if fence == "```" else "Code"
            raise _entity_error(f"Can't find end of {name} entity at byte offset {where}")
        raise _entity_error(f"Can't find end of the entity starting at byte offset {where}")
    inner = text[i + len(fence) : end]
    extra: JSONDict = {}
    if fence == "```":
        first, newline, rest = inner.partition("\n")
        if newline and first and " " not in first:
            extra["language"], inner = first, rest
    start = out.offset
    out.add(_md_unescape(inner) if v2 else inner)
    out.entity("pre" if fence == "```" else "code", start, extra)
    return end + len(fence)


def _md_link(text: str, i: int, out: _TextBuilder, v2: bool) -> int:
    """Parse [text](url) at ``i``; returns the index after it."""
    close = _md_find_end(text, i + 1, "]") if v2 else text.find("]", i + 1)
    if close < 0 or not text.startswith("(", close + 1):
        if v2:
            raise _entity_error(f"Can't find end of a URL at byte offset {_byte_offset(text, i)}")
        out.add("[")
        return i + 1
    end = _md_find_end(text, close + 2, ")") if v2 else text.find(")", close + 2)
    if end < 0:
        raise _entity_error(f"Can't find end of a URL at byte offset {_byte_offset(text, i)}")
    label = text[i + 1 : close]
    start = out.offset
    out.add(_md_unescape(label) if v2 else label)
    out.entity("text_link", start, {"url": _md_unescape(text[close + 2 : end])})
    return end + 1


def _md_v2_marker(text: str, i: int) -> tuple[str, str] | None:
    for marker, kind in _MDV2_MARKERS:
        if text.startswith(marker, i):
            return marker, kind
    return None


def parse_markdown_v2(text: str) -> tuple[str, list[JSONDict]]:
    """Telegram's MarkdownV2 (loosely): unescaped reserved characters and open entities fail."""
    out = _TextBuilder()
    stack: list[tuple[str, str, int, int]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.add(text[i + 1])
            i += 2
        elif char == "`":
            i = _md_code(text, i, out, v2=True)
        elif char == "[":
            i = _md_link(text, i, out, v2=True)
        elif char == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1
        elif marker := _md_v2_marker(text, i):
            _md_toggle(marker, stack, out, _byte_offset(text, i))
            i += len(marker[0])
        elif char in _MDV2_RESERVED:
            raise _entity_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            out.add(char)
            i += 1
    if stack:
        _, kind, _, where = stack[-1]
        raise _entity_error(f"Can't find end of {kind.title()} entity at byte offset {where}")
    return out.result()


def _md_toggle(
    marker: tuple[str, str], stack: list[tuple[str, str, int, int]], out: _TextBuilder, at: int
) -> None:
    symbol, kind = marker
    if stack and stack[-1][0] == symbol:
        out.entity(kind, stack.pop()[2])
    elif any(entry[0] == symbol for entry in stack):
        _, open_kind, _, where = stack[-1]
        raise _entity_error(f"Can't find end of {open_kind.title()} entity at byte offset {where}")
    else:
        stack.append((symbol, kind, out.offset, at))


def parse_markdown(text: str) -> tuple[str, list[JSONDict]]:
    """Telegram's legacy Markdown: *bold* _italic_ `code` ```pre``` [text](url)."""
    out = _TextBuilder()
    kinds = {"*": "bold", "_": "italic"}
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1 : i + 2] in ("_", "*", "`", "["):
            out.add(text[i + 1])
            i += 2
        elif char == "`":
            i = _md_code(text, i, out, v2=False)
        elif char == "[":
            i = _md_link(text, i, out, v2=False)
        elif char in kinds:
            end = text.find(char, i + 1)
            if end < 0:
                where = _byte_offset(text, i)
                raise _entity_error(f"Can't find end of the entity starting at byte offset {where}")
            start = out.offset
            out.add(text[i + 1 : end])
            out.entity(kinds[char], start)
            i = end + 1
        else:
            out.add(char)
            i += 1
    return out.result()


_PARSERS: dict[str, Callable[[str], tuple[str, list[JSONDict]]]] = {
    "html": parse_html,
    "markdownv2": parse_markdown_v2,
    "markdown": parse_markdown,
}


def format_text(
    text: str, parse_mode: str | None, entities: object = None
) -> tuple[str, list[JSONDict]]:
    """Apply a parse mode (or explicit entities) like Telegram does."""
    if not parse_mode:
        return text, list(cast("list[JSONDict]", entities or []))
    parser = _PARSERS.get(parse_mode.lower())
    if parser is None:
        raise _bad("unsupported parse_mode")
    return parser(text)


def _check_text(plain: str) -> None:
    if not plain.strip():
        raise _bad("message text is empty")
    if len(plain) > MAX_TEXT:
        raise _bad("message is too long")


def _detect_entities(text: str) -> list[JSONDict]:
    """bot_command and mention entities, as Telegram adds them to user messages."""
    found: list[JSONDict] = []
    for kind, pattern in (("bot_command", _USER_COMMAND_RE), ("mention", _MENTION_RE)):
        for match in pattern.finditer(text):
            offset = _utf16_len(text[: match.start()])
            found.append({"type": kind, "offset": offset, "length": _utf16_len(match[0])})
    return sorted(found, key=lambda e: e["offset"])


# --- reply markup -------------------------------------------------------------------------

_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def _rows(value: object, field_name: str, type_name: str) -> list[list[object]]:
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        raise _bad(f'field "{field_name}" of the {type_name} should be an Array of Arrays')
    return cast("list[list[object]]", value)


def _check_inline_button(button: object) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
    if not button["text"]:
        raise _bad("BUTTON_TEXT_EMPTY")
    if not any(action in button for action in _INLINE_ACTIONS):
        raise _bad(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
        raise _bad("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not re.match(r"^(https?|tg)://\S+$", str(url)):
        raise _bad("BUTTON_URL_INVALID")


def _check_keyboard_button(button: object, chat_type: str) -> None:
    if isinstance(button, str):
        return
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad('can\'t parse keyboard button: Field "text" must be of type String')
    if chat_type != "private" and button.get("request_location"):
        raise _bad("location can be requested in private chats only")
    if chat_type != "private" and button.get("request_contact"):
        raise _bad("phone number can be requested in private chats only")


def parse_reply_markup(raw: object, chat_type: str = "private") -> JSONDict | None:
    """Parse and validate a reply_markup parameter (JSON string or dict)."""
    if raw is None or raw == "":
        return None
    markup = _loads(raw, "can't parse reply keyboard markup JSON object")
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = _rows(markup["inline_keyboard"], "inline_keyboard", "InlineKeyboardMarkup")
        for button in (b for row in rows for b in row):
            _check_inline_button(button)
    elif "keyboard" in markup:
        for button in (
            b for row in _rows(markup["keyboard"], "keyboard", "ReplyKeyboardMarkup") for b in row
        ):
            _check_keyboard_button(button, chat_type)
    elif not (markup.get("remove_keyboard") is True or markup.get("force_reply") is True):
        raise _bad("can't parse reply keyboard markup JSON object")
    return cast("JSONDict", markup)


def _loads(raw: object, error: str) -> object:
    if not isinstance(raw, str | bytes):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        raise _bad(error) from None


# --- files --------------------------------------------------------------------------------

_KINDS = {
    # kind: (file_id prefix, folder, default extension, default mime type)
    "photo": ("AgACAgIAAxkBAAI", "photos", "jpg", "image/jpeg"),
    "document": ("BQACAgIAAxkBAAI", "documents", "bin", "application/octet-stream"),
    "voice": ("AwACAgIAAxkBAAI", "voice", "oga", "audio/ogg"),
    "video": ("BAACAgIAAxkBAAI", "videos", "mp4", "video/mp4"),
    "sticker": ("CAACAgIAAxkBAAI", "stickers", "webp", "image/webp"),
}
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, GIF or JPEG, else (0, 0)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return cast("tuple[int, int]", struct.unpack(">II", data[16:24]))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return cast("tuple[int, int]", struct.unpack("<HH", data[6:10]))
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return 0, 0


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
        elif data[i + 1] in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        elif data[i + 1] in (0x01, 0xFF) or 0xD0 <= data[i + 1] <= 0xD9:
            i += 2 if data[i + 1] != 0xFF else 1
        else:
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return 0, 0


class _FileStore:
    """Files by file_id and by file_path."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._count = 0

    def add(self, kind: str, data: bytes, **details: Any) -> StoredFile:
        prefix, folder, extension, mime = _KINDS[kind]
        self._count += 1
        name = details.get("file_name")
        if name and "." in name:
            extension = name.rsplit(".", 1)[1]
        details.setdefault("mime_type", mime)
        stored = StoredFile(
            file_id=prefix + secrets.token_urlsafe(24),
            file_unique_id="AQAD" + secrets.token_urlsafe(9),
            kind=kind,
            data=data,
            file_path=f"{folder}/file_{self._count}.{extension}",
            **details,
        )
        self._by_id[stored.file_id] = stored
        self._by_path[stored.file_path] = stored
        return stored

    def add_photo(self, data: bytes) -> StoredFile:
        width, height = image_size(data)
        photo = self.add("photo", data, width=width, height=height)
        if max(width, height) > 90:
            scale = 90 / max(width, height)
            size = {"width": max(1, round(width * scale)), "height": max(1, round(height * scale))}
            photo.thumbnail = self.add("photo", data, **size)
        return photo

    def get(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        return self._by_path.get(file_path)


def _file_base(stored: StoredFile) -> JSONDict:
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
    }


def _photo_size(stored: StoredFile) -> JSONDict:
    return {**_file_base(stored), "width": stored.width, "height": stored.height}


def media_object(stored: StoredFile) -> JSONDict | list[JSONDict]:
    """The Bot API object for a stored file (a PhotoSize list for photos)."""
    if stored.kind == "photo":
        sizes = [stored.thumbnail] if stored.thumbnail else []
        return [_photo_size(size) for size in [*sizes, stored]]
    found = _file_base(stored)
    if stored.kind in ("document", "video") and stored.file_name:
        found["file_name"] = stored.file_name
    if stored.kind in ("document", "voice", "video"):
        found["mime_type"] = stored.mime_type
    if stored.kind in ("voice", "video"):
        found["duration"] = stored.duration
    if stored.kind in ("video", "sticker"):
        found.update(width=stored.width, height=stored.height)
    return found


# --- request parameters -------------------------------------------------------------------


@dataclass(frozen=True)
class _Upload:
    data: bytes
    filename: str | None
    content_type: str | None


class _Params:
    """Request parameters from a query string, form, multipart or JSON body."""

    def __init__(self, values: Mapping[str, object], uploads: Mapping[str, _Upload]) -> None:
        self.values = dict(values)
        self.uploads = dict(uploads)

    def raw(self, name: str) -> object:
        value = self.values.get(name)
        return None if value == "" else value

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value)

    def integer(self, name: str) -> int | None:
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _bad(f'can\'t parse parameter "{name}"')
        try:
            return int(value)
        except ValueError:
            raise _bad(f'can\'t parse parameter "{name}"') from None

    def number(self, name: str) -> float | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return float(cast("str | float", value))
        except (TypeError, ValueError):
            raise _bad(f'can\'t parse parameter "{name}"') from None

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))

    def obj(self, name: str) -> Any:
        return _loads(self.raw(name), f"can't parse {name} JSON object")

    def upload(self, name: str) -> _Upload | None:
        return self.uploads.get(name)

    def summary(self) -> JSONDict:
        """JSON-safe copy for the call log (uploads shown by size)."""
        files = {
            name: f"<upload {up.filename or name}, {len(up.data)} bytes>"
            for name, up in self.uploads.items()
        }
        return {**self.values, **files}


async def _read_params(request: web.Request) -> _Params:
    values: dict[str, object] = dict(request.query)
    uploads: dict[str, _Upload] = {}
    if request.method != "POST" or not request.can_read_body:
        return _Params(values, uploads)
    try:
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise _bad("can't parse JSON object")
            values.update(body)
            return _Params(values, uploads)
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "Request Entity Too Large") from None
    except ValueError:
        raise _bad("can't parse JSON object") from None
    for key, value in form.items():
        if isinstance(value, web.FileField):
            uploads[key] = _Upload(value.file.read(), value.filename, value.content_type)
        else:
            values[key] = value.decode() if isinstance(value, bytes | bytearray) else value
    return _Params(values, uploads)


# --- internal state -----------------------------------------------------------------------


class _Signal:
    """A broadcast wake-up that synchronous code can fire."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, condition: Callable[[], bool], seconds: float | None) -> bool:
        """Wait until ``condition()`` holds; False after ``seconds`` (None: forever)."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while not condition():
            if deadline is not None and deadline <= loop.time():
                return False
            event = self._event
            # asyncio.timeout, not wait_for: no task per wait (hundreds of waiters in bench/).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await event.wait()
        return True


class _FloodGate:
    """Sliding-window flood control counted in emulated seconds."""

    def __init__(self, limits: FloodLimits) -> None:
        self.limits = limits
        self._overall: deque[float] = deque()
        self._chats: dict[int, deque[float]] = {}
        self._wrote: dict[int, float] = {}
        self._tats: dict[int, float] = {}  # per chat with bursts: when the burst is whole

    def wrote(self, chat_id: int) -> None:
        """Someone wrote in (or pressed a button of) the chat just now."""
        self._wrote[chat_id] = time.monotonic() * self.limits.time_scale

    def check(self, chat_id: int, is_group: bool) -> None:
        """Raise 429 if one more message now would exceed a limit, else count it."""
        now = time.monotonic() * self.limits.time_scale
        chat = self._chats.setdefault(chat_id, deque())
        limits = self.limits
        windows = []
        if is_group:
            windows.append((chat, limits.group_per_minute, 60.0))
        elif limits.private_chat_burst <= 1:
            windows.append((chat, limits.private_chat_per_second, 1.0))
        wrote = self._wrote.get(chat_id)
        exempt = limits.replies_exempt_seconds
        if exempt <= 0 or wrote is None or now - wrote > exempt:
            windows.append((self._overall, limits.overall_per_second, 1.0))
        wait = max(
            (self._wait(queue, limit, span, now) for queue, limit, span in windows), default=0.0
        )
        bursting = not is_group and limits.private_chat_burst > 1
        if bursting:
            interval = 1.0 / limits.private_chat_per_second
            tat = self._tats.get(chat_id, 0.0)
            wait = max(wait, tat - (limits.private_chat_burst - 1) * interval - now)
        if wait > 0:
            raise _too_many(max(1, math.ceil(wait)))
        for queue, _, _ in windows:
            queue.append(now)
        if bursting:
            self._tats[chat_id] = max(self._tats.get(chat_id, 0.0), now) + interval

    @staticmethod
    def _wait(queue: deque[float], limit: int, span: float, now: float) -> float:
        while queue and queue[0] <= now - span:
            queue.popleft()
        if limit <= 0 or len(queue) < limit:
            return 0.0
        return queue[0] + span - now


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    has_custom_certificate: bool
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class _Fault:
    method: str | None
    count: int
    error: ApiError

    def matches(self, method: str) -> bool:
        return self.method == method or (self.method is None and method in SEND_METHODS)


@dataclass(frozen=True)
class _Described:
    """A result with Telegram's optional success description."""

    result: object
    description: str


@dataclass
class _BotState:
    """Everything one bot token owns."""

    token: str
    me: JSONDict
    flood: _FloodGate | None
    updates: list[JSONDict] = field(default_factory=list)
    next_update_id: int = 100_000_001
    allowed_updates: list[str] = field(default_factory=list)
    webhook: _Webhook | None = None
    webhook_task: asyncio.Task[None] | None = None
    poll_generation: int = 0
    signal: _Signal = field(default_factory=_Signal)
    message_counters: dict[int, int] = field(default_factory=dict)
    messages: dict[tuple[int, int], JSONDict] = field(default_factory=dict)
    sent: list[SentMessage] = field(default_factory=list)
    sent_by_chat: dict[int, list[SentMessage]] = field(default_factory=dict)
    sent_index: dict[tuple[int, int], SentMessage] = field(default_factory=dict)
    marks: dict[int, int] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    commands: dict[tuple[tuple[object, ...], str], list[JSONDict]] = field(default_factory=dict)
    menu_buttons: dict[int | None, JSONDict] = field(default_factory=dict)
    texts: dict[tuple[str, str], str] = field(default_factory=dict)
    open_queries: dict[str, JSONDict] = field(default_factory=dict)
    # While set, getUpdates calls hang without acknowledging their offset: the window in
    # which a bot has handled an update but Telegram has not heard so (a crash there).
    holding_polls: bool = False

    @property
    def user(self) -> JSONDict:
        """The bot as the ``from`` of its messages."""
        keys = ("id", "is_bot", "first_name", "username")
        return {key: self.me[key] for key in keys}

    def next_message_id(self, chat_id: int) -> int:
        self.message_counters[chat_id] = self.message_counters.get(chat_id, 0) + 1
        return self.message_counters[chat_id]

    def allows(self, kind: str) -> bool:
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in OPT_IN_UPDATES

    def acknowledge(self, offset: int | None) -> None:
        """getUpdates offset semantics: forget older updates."""
        if offset is None or offset == 0:
            return
        if offset < 0:
            del self.updates[: max(0, len(self.updates) + offset)]
        else:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]

    def record(self, sent: SentMessage) -> None:
        self.sent.append(sent)
        self.sent_by_chat.setdefault(sent.chat_id, []).append(sent)
        self.sent_index[sent.chat_id, sent.message_id] = sent


Handler = Callable[[_BotState, _Params], Awaitable[object]]


def _scope_key(scope: object) -> tuple[object, ...]:
    """A BotCommandScope as a hashable key."""
    if scope is None or scope == "":
        return ("default",)
    if isinstance(scope, str) and not scope.lstrip().startswith("{"):
        scope = {"type": scope}
    data = _loads(scope, "can't parse BotCommandScope JSON object")
    if not isinstance(data, dict) or data.get("type") not in SCOPE_TYPES:
        raise _bad("unsupported bot command scope type")
    kind = data["type"]
    if kind in ("chat", "chat_administrators", "chat_member"):
        if data.get("chat_id") is None:
            raise _bad("chat_id is empty")
        chat = data["chat_id"]
        chat = int(chat) if str(chat).lstrip("-").isdigit() else chat
        return (kind, chat, data.get("user_id")) if kind == "chat_member" else (kind, chat)
    return (kind,)


def _check_commands(commands: object) -> list[JSONDict]:
    if not isinstance(commands, list):
        raise _bad("can't parse commands JSON object")
    if len(commands) > 100:
        raise _bad("too many commands")
    for command in commands:
        if not isinstance(command, dict) or not _COMMAND_RE.match(str(command.get("command"))):
            raise _bad("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description") or "")) <= 256:
            raise _bad("command description is empty")
    return cast("list[JSONDict]", commands)


def _check_language(language_code: str | None) -> str:
    code = language_code or ""
    if code and not re.match(r"^[a-z]{2}$", code):
        raise _bad("LANG_CODE_INVALID")
    return code


def _check_webhook_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK_HOSTS:
        raise _bad("bad webhook: the test server delivers to loopback http(s) URLs only")


# --- the server ---------------------------------------------------------------------------


class BotApiServer:
    """Telegram Bot API emulator plus a fake human; loopback only."""

    def __init__(
        self,
        *,
        flood_limits: bool | FloodLimits = False,
        transient_failure_rate: float = 0.0,
        seed: int = 0,
        webhook_retry_delay: float = 0.05,
    ) -> None:
        if flood_limits is True:
            flood_limits = FloodLimits()
        self.flood_limits: FloodLimits | None = flood_limits or None
        self.transient_failure_rate = transient_failure_rate
        self.webhook_retry_delay = webhook_retry_delay
        self._random = random.Random(seed)
        self._bots: dict[str, _BotState] = {}
        self._users: dict[int, JSONDict] = {}
        self._chats: dict[int, JSONDict] = {}
        self._files = _FileStore()
        self._faults: list[_Fault] = []
        self._calls: list[ApiCall] = []
        self._callback_answers: list[CallbackAnswer] = []
        self._chat_actions: list[ChatAction] = []
        self._changed = _Signal()
        self._chats_changed: dict[int, _Signal] = {}  # messages sent or edited, per chat
        self._sent_count = 0
        self._query_count = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._address: tuple[str, int] | None = None
        self._methods: dict[str, Handler] = self._method_table()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (port 0: a free port)."""
        if host not in LOOPBACK_HOSTS:
            raise ValueError("the Bot API test server listens on loopback only")
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_get("/bot{token}/{method}", self._handle_api)
        app.router.add_post("/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        await web.SockSite(self._runner, sock).start()
        bound_host = "127.0.0.1" if host == "localhost" else host
        self._address = (bound_host, sock.getsockname()[1])
        self._session = aiohttp.ClientSession(trust_env=False)
        self._closing = False

    async def stop(self) -> None:
        """Stop webhook delivery, wake long polls and close the listener."""
        self._closing = True
        tasks = [bot.webhook_task for bot in self._bots.values() if bot.webhook_task]
        for bot in self._bots.values():
            bot.signal.fire()
        self._changed.fire()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._address is None:
            raise RuntimeError("BotApiServer is not started")
        return self._address[1]

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._address is None:
            raise RuntimeError("BotApiServer is not started")
        host, port = self._address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``."""
        return f"{self.root_url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url(...)``."""
        return f"{self.root_url}/file/bot"

    # -- bots, users, chats ---------------------------------------------------------------

    def add_bot(
        self,
        token: str,
        username: str = "sicherheitsbot",
        bot_id: int | None = None,
        *,
        first_name: str = "Sicherheitsbot",
        can_join_groups: bool = True,
        can_read_all_group_messages: bool = False,
    ) -> JSONDict:
        """Register a bot token; returns its getMe answer."""
        if bot_id is None:
            prefix = token.split(":", 1)[0]
            bot_id = int(prefix) if prefix.isdigit() else 7_000_000_000 + len(self._bots)
        me: JSONDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
            "can_join_groups": can_join_groups,
            "can_read_all_group_messages": can_read_all_group_messages,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        flood = _FloodGate(self.flood_limits) if self.flood_limits else None
        self._bots[token] = _BotState(token=token, me=me, flood=flood)
        return dict(me)

    def add_user(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> JSONDict:
        """Register (or update) a human user and their private chat."""
        origin = Origin()
        for key, value in (
            ("first_name", first_name),
            ("last_name", last_name),
            ("username", username),
            ("language_code", language_code),
        ):
            if value is not None:
                origin[key] = value  # type: ignore[literal-required]
        user = self._ensure_user(user_id, origin)
        self._ensure_chat(user, Origin(chat_id=user_id, chat_type="private"))
        return dict(user)

    def _bot(self, token: str | None) -> _BotState:
        if token is not None:
            return self._bots[token]
        if not self._bots:
            raise RuntimeError("no bot registered: call add_bot(token) first")
        return next(iter(self._bots.values()))

    def _ensure_user(self, user_id: int, origin: Origin) -> JSONDict:
        user = self._users.setdefault(
            user_id,
            {"id": user_id, "is_bot": False, "first_name": f"Nutzer {user_id}"},
        )
        user.setdefault("language_code", origin.get("language_code", "de"))
        for key in ("first_name", "last_name", "username", "language_code"):
            if key in origin:
                user[key] = origin[key]
        return user

    def _ensure_chat(self, user: JSONDict, origin: Origin) -> JSONDict:
        chat_id = origin.get("chat_id", user["id"])
        known = self._chats.get(chat_id, {})
        chat_type = origin.get("chat_type") or known.get("type") or _default_chat_type(chat_id)
        if chat_type == "private":
            if chat_id != user["id"]:
                raise ValueError("a private chat has the id of its user")
            keys = ("first_name", "last_name", "username")
            chat = {"id": chat_id, "type": "private", **{k: user[k] for k in keys if k in user}}
        else:
            if chat_id >= 0:
                raise ValueError("group chat ids are negative")
            title = origin.get("chat_title") or known.get("title") or "Testgruppe"
            chat = {"id": chat_id, "type": chat_type, "title": title}
        self._chats[chat_id] = chat
        return chat

    def _resolve_chat(self, raw: object) -> JSONDict:
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        text = str(raw)
        chat: JSONDict | None = None
        if text.lstrip("-").isdigit():
            chat = self._chats.get(int(text))
        elif text.startswith("@"):
            name = text[1:].lower()
            chat = next(
                (c for c in self._chats.values() if str(c.get("username", "")).lower() == name),
                None,
            )
        if chat is None:
            raise _bad("chat not found")
        return chat

    def _writable_chat(self, bot: _BotState, params: _Params) -> JSONDict:
        chat = self._resolve_chat(params.raw("chat_id"))
        if chat["type"] == "private" and chat["id"] in bot.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    # -- HTTP layer -----------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        params = _Params({}, {})
        try:
            bot = self._bots.get(token)
            if bot is None:
                raise ApiError(401, "Unauthorized")
            params = await _read_params(request)
            result = await self._call(bot, method, params)
        except ApiError as error:
            self._log(token, method, params, error.code, error.description)
            return web.json_response(error.body(), status=error.code)
        self._log(token, method, params, 200, None)
        body: JSONDict = {"ok": True, "result": result}
        if isinstance(result, _Described):
            body = {"ok": True, "result": result.result, "description": result.description}
        return web.json_response(body)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self._bots:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        stored = self._files.by_path(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type)

    def _log(
        self, token: str, method: str, params: _Params, status: int, error: str | None
    ) -> None:
        self._calls.append(ApiCall(token, method, status, params.summary(), error))

    async def _call(self, bot: _BotState, method: str, params: _Params) -> object:
        key = method.lower()
        handler = self._methods.get(key)
        if handler is None:
            raise _bad("method not found")
        self._inject_faults(key)
        return await handler(bot, params)

    def _inject_faults(self, method: str) -> None:
        for fault in self._faults:
            if fault.matches(method):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                raise fault.error
        rate = self.transient_failure_rate
        if method in WRITE_METHODS and rate > 0 and self._random.random() < rate:
            raise _http_error(502)

    def _method_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "getme": self._get_me,
            "logout": self._true,
            "close": self._true,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "sendlocation": self._send_location,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "getfile": self._get_file,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "sendchataction": self._send_chat_action,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
            "setchatmenubutton": self._set_chat_menu_button,
            "getchatmenubutton": self._get_chat_menu_button,
        }
        for kind in ("photo", "document", "voice", "video"):
            table[f"send{kind}"] = self._media_sender(kind)
        for kind in ("description", "short_description", "name"):
            table[f"setmy{kind.replace('_', '')}"] = self._text_setter(kind)
            table[f"getmy{kind.replace('_', '')}"] = self._text_getter(kind)
        return table

    # -- simple methods -------------------------------------------------------------------

    async def _true(self, bot: _BotState, params: _Params) -> object:
        return True

    async def _get_me(self, bot: _BotState, params: _Params) -> object:
        return dict(bot.me)

    async def _get_chat(self, bot: _BotState, params: _Params) -> object:
        chat = self._resolve_chat(params.raw("chat_id"))
        gifts = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
        accepted = {key: False for key in (*gifts, "gifts_from_channels")}
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": accepted,
        }

    async def _get_chat_member(self, bot: _BotState, params: _Params) -> object:
        chat = self._resolve_chat(params.raw("chat_id"))
        user_id = params.integer("user_id")
        if user_id == bot.me["id"]:
            return {"status": "member", "user": bot.user}
        user = self._users.get(user_id or 0)
        if user is None:
            raise _bad("user not found")
        if chat["type"] == "private" and user["id"] in bot.blocked:
            return {"status": "kicked", "user": user, "until_date": 0}
        return {"status": "member", "user": user}

    async def _set_chat_menu_button(self, bot: _BotState, params: _Params) -> object:
        chat_id = params.integer("chat_id")
        if chat_id is not None:
            self._resolve_chat(chat_id)
        bot.menu_buttons[chat_id] = params.obj("menu_button") or {"type": "default"}
        return True

    async def _get_chat_menu_button(self, bot: _BotState, params: _Params) -> object:
        chat_id = params.integer("chat_id")
        fallback = bot.menu_buttons.get(None, {"type": "commands"})
        return bot.menu_buttons.get(chat_id, fallback)

    def _text_setter(self, kind: str) -> Handler:
        async def setter(bot: _BotState, params: _Params) -> object:
            language = _check_language(params.text("language_code"))
            bot.texts[kind, language] = params.text(kind) or ""
            return True

        return setter

    def _text_getter(self, kind: str) -> Handler:
        async def getter(bot: _BotState, params: _Params) -> object:
            language = _check_language(params.text("language_code"))
            return {kind: bot.texts.get((kind, language), "")}

        return getter

    # -- updates and webhooks -------------------------------------------------------------

    async def _get_updates(self, bot: _BotState, params: _Params) -> object:
        if bot.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        if bot.holding_polls:
            await bot.signal.wait_for(lambda: not bot.holding_polls or self._closing, None)
            raise _http_error(502)  # the held call never counted: its offset is not applied
        allowed = params.obj("allowed_updates")
        if allowed is not None:
            bot.allowed_updates = list(allowed)
        bot.acknowledge(params.integer("offset"))
        limit = min(max(params.integer("limit") or 100, 1), 100)
        timeout = max(params.number("timeout") or 0.0, 0.0)
        bot.poll_generation += 1
        generation = bot.poll_generation
        bot.signal.fire()

        def ready() -> bool:
            superseded = bot.poll_generation != generation or bot.webhook is not None
            return bool(bot.updates) or superseded or self._closing

        await bot.signal.wait_for(ready, timeout)
        if bot.poll_generation != generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        return bot.updates[:limit]

    async def _set_webhook(self, bot: _BotState, params: _Params) -> object:
        url = params.text("url") or ""
        if not url:
            return await self._delete_webhook(bot, params)
        _check_webhook_url(url)
        secret = params.text("secret_token")
        if secret is not None and not _SECRET_RE.match(secret):
            raise _bad("secret token contains unallowed characters")
        allowed = params.obj("allowed_updates")
        if allowed is not None:
            bot.allowed_updates = list(allowed)
        if params.flag("drop_pending_updates"):
            bot.updates.clear()
        previous = bot.webhook
        already = previous is not None and previous.url == url
        bot.webhook = _Webhook(
            url=url,
            secret_token=secret,
            max_connections=params.integer("max_connections") or 40,
            ip_address=params.text("ip_address"),
            has_custom_certificate=params.upload("certificate") is not None,
        )
        if previous is not None:
            bot.webhook.last_error_date = previous.last_error_date
            bot.webhook.last_error_message = previous.last_error_message
        self._ensure_webhook_task(bot)
        bot.signal.fire()
        return _Described(True, "Webhook is already set" if already else "Webhook was set")

    async def _delete_webhook(self, bot: _BotState, params: _Params) -> object:
        if params.flag("drop_pending_updates"):
            bot.updates.clear()
        had_webhook = bot.webhook is not None
        bot.webhook = None
        bot.signal.fire()
        return _Described(
            True, "Webhook was deleted" if had_webhook else "Webhook is already deleted"
        )

    async def _get_webhook_info(self, bot: _BotState, params: _Params) -> object:
        return self.webhook_info(bot.token)

    def _ensure_webhook_task(self, bot: _BotState) -> None:
        if bot.webhook_task is None or bot.webhook_task.done():
            bot.webhook_task = asyncio.create_task(self._deliver_webhook(bot))

    async def _deliver_webhook(self, bot: _BotState) -> None:
        """POST pending updates one by one; retry with backoff until 2xx."""
        delay = self.webhook_retry_delay
        while not self._closing and (hook := bot.webhook) is not None:
            if not bot.updates:
                await bot.signal.wait_for(
                    lambda: bool(bot.updates) or bot.webhook is not hook or self._closing, None
                )
                continue
            update = bot.updates[0]
            error = await self._post_update(hook, update)
            if error is None:
                if bot.updates and bot.updates[0] is update:
                    bot.updates.pop(0)
                self._changed.fire()
                delay = self.webhook_retry_delay
                continue
            hook.last_error_date = int(time.time())
            hook.last_error_message = error
            self._changed.fire()
            await bot.signal.wait_for(lambda: bot.webhook is not hook or self._closing, delay)
            delay = min(delay * 2, self.webhook_retry_delay * 20)

    async def _post_update(self, hook: _Webhook, update: JSONDict) -> str | None:
        """Deliver one update; the error message Telegram would show, or None."""
        assert self._session is not None
        headers = (
            {"X-Telegram-Bot-Api-Secret-Token": hook.secret_token} if hook.secret_token else {}
        )
        try:
            async with self._session.post(
                hook.url,
                json=update,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=10),
                ssl=False,
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"Wrong response from the webhook: {response.status} {response.reason}"
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except aiohttp.ClientError as exc:
            return f"Webhook delivery failed: {exc.__class__.__name__}"

    # -- sending ----------------------------------------------------------------------------

    async def _send_message(self, bot: _BotState, params: _Params) -> object:
        chat = self._writable_chat(bot, params)
        text = params.text("text") or ""
        parse_mode = params.text("parse_mode")
        plain, entities = format_text(text, parse_mode, params.obj("entities"))
        _check_text(plain)
        content: JSONDict = {"text": plain}
        if entities:
            content["entities"] = entities
        sent = SentMessage(0, chat["id"], "sendMessage", text=text, parse_mode=parse_mode)
        return self._deliver(bot, params, chat, sent, content)

    async def _send_location(self, bot: _BotState, params: _Params) -> object:
        chat = self._writable_chat(bot, params)
        latitude, longitude = params.number("latitude"), params.number("longitude")
        if latitude is None or longitude is None:
            raise _bad("wrong latitude" if latitude is None else "wrong longitude")
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise _bad("wrong location")
        location: JSONDict = {"latitude": latitude, "longitude": longitude}
        for key in ("horizontal_accuracy", "live_period", "heading"):
            if params.raw(key) is not None:
                location[key] = params.number(key)
        sent = SentMessage(0, chat["id"], "sendLocation")
        return self._deliver(bot, params, chat, sent, {"location": location})

    def _media_sender(self, kind: str) -> Handler:
        async def send(bot: _BotState, params: _Params) -> object:
            return self._send_media(bot, params, kind)

        return send

    def _send_media(self, bot: _BotState, params: _Params, kind: str) -> JSONDict:
        chat = self._writable_chat(bot, params)
        stored = self._input_file(params, kind)
        caption = params.text("caption")
        parse_mode = params.text("parse_mode")
        plain, entities = format_text(caption or "", parse_mode, params.obj("caption_entities"))
        if len(plain) > MAX_CAPTION:
            raise _bad("message caption is too long")
        content: JSONDict = {kind: media_object(stored)}
        if plain:
            content["caption"] = plain
        if entities:
            content["caption_entities"] = entities
        method = f"send{kind.capitalize()}"
        sent = SentMessage(
            0, chat["id"], method, caption=caption, parse_mode=parse_mode, file=stored
        )
        return self._deliver(bot, params, chat, sent, content)

    def _input_file(self, params: _Params, kind: str) -> StoredFile:
        value = params.text(kind)
        upload = params.upload(kind)
        if value and value.startswith("attach://"):
            upload = params.upload(value.removeprefix("attach://"))
        if upload is not None:
            return self._store_upload(upload, params, kind)
        if not value:
            raise _bad(f"there is no {kind} in the request")
        if "://" in value:
            raise _bad("failed to get HTTP URL content")
        stored = self._files.get(value)
        if stored is None:
            raise _bad("wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise _bad(f"can't use file of type {stored.kind.title()} as {kind.title()}")
        return stored

    def _store_upload(self, upload: _Upload, params: _Params, kind: str) -> StoredFile:
        if not upload.data:
            raise _bad("file must be non-empty")
        if len(upload.data) > MAX_UPLOAD:
            raise ApiError(413, "Request Entity Too Large")
        if kind == "photo":
            return self._files.add_photo(upload.data)
        details: JSONDict = {"file_name": upload.filename, "duration": params.integer("duration")}
        details.update(width=params.integer("width"), height=params.integer("height"))
        if upload.content_type and upload.content_type != "application/octet-stream":
            details["mime_type"] = upload.content_type
        return self._files.add(kind, upload.data, **{k: v for k, v in details.items() if v})

    def _reply_target(self, bot: _BotState, chat: JSONDict, params: _Params) -> JSONDict | None:
        options = params.obj("reply_parameters") or {}
        message_id = options.get("message_id") or params.integer("reply_to_message_id")
        if message_id is None:
            return None
        target = bot.messages.get((chat["id"], int(message_id)))
        if target is None:
            allow = options.get("allow_sending_without_reply")
            if allow or params.flag("allow_sending_without_reply"):
                return None
            raise _bad("message to be replied not found")
        return {key: value for key, value in target.items() if key != "reply_to_message"}

    def _deliver(
        self,
        bot: _BotState,
        params: _Params,
        chat: JSONDict,
        sent: SentMessage,
        content: JSONDict,
    ) -> JSONDict:
        """Validate markup and reply, apply flood limits, then record the message."""
        markup = parse_reply_markup(params.raw("reply_markup"), chat["type"])
        reply_to = self._reply_target(bot, chat, params)
        if bot.flood is not None:
            bot.flood.check(chat["id"], chat["type"] != "private")
        message = self._new_message(bot, chat, bot.user, content)
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        sent.message_id, sent.date, sent.message = message["message_id"], message["date"], message
        sent.reply_markup = markup
        sent.reply_to_message_id = reply_to["message_id"] if reply_to else None
        sent.params = params.summary()
        sent.received = time.perf_counter()
        bot.record(sent)
        self._sent_count += 1
        self._changed.fire()
        self._chat_changed(chat["id"]).fire()
        return dict(message)

    def _new_message(
        self, bot: _BotState, chat: JSONDict, sender: JSONDict, content: JSONDict
    ) -> JSONDict:
        message: JSONDict = {
            "message_id": bot.next_message_id(chat["id"]),
            "from": dict(sender),
            "chat": dict(chat),
            "date": int(time.time()),
            **content,
        }
        bot.messages[chat["id"], message["message_id"]] = message
        return message

    # -- editing, deleting, callbacks, actions ----------------------------------------------

    def _editable(self, bot: _BotState, params: _Params) -> SentMessage:
        if params.raw("inline_message_id") is not None:
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._writable_chat(bot, params)
        message_id = params.integer("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        sent = bot.sent_index.get((chat["id"], message_id))
        if sent is not None and not sent.deleted:
            return sent
        if (chat["id"], message_id) in bot.messages:
            raise _bad("message can't be edited")
        raise _bad("message to edit not found")

    def _apply_edit(
        self, sent: SentMessage, content: JSONDict, markup: JSONDict | None, raw: JSONDict
    ) -> JSONDict:
        """Replace content and inline keyboard, unless nothing changes."""
        message = sent.message
        new_markup = {"inline_keyboard": markup["inline_keyboard"]} if markup else None
        unchanged = all(message.get(key) == (value or None) for key, value in content.items())
        if unchanged and message.get("reply_markup") == new_markup:
            raise _bad(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        sent.history.append(
            {
                "text": sent.text,
                "caption": sent.caption,
                "parse_mode": sent.parse_mode,
                "reply_markup": sent.reply_markup,
                "message": dict(message),
            }
        )
        message.update({key: value for key, value in content.items() if value})
        for key, value in content.items():
            if not value:
                message.pop(key, None)
        message.pop("reply_markup", None)
        if new_markup:
            message["reply_markup"] = new_markup
        message["edit_date"] = int(time.time())
        sent.reply_markup = markup
        for key, value in raw.items():
            setattr(sent, key, value)
        self._changed.fire()
        self._chat_changed(sent.chat_id).fire()
        return dict(message)

    def _inline_markup(self, params: _Params) -> JSONDict | None:
        markup = parse_reply_markup(params.raw("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise _bad("inline keyboard expected")
        return markup

    async def _edit_message_text(self, bot: _BotState, params: _Params) -> object:
        sent = self._editable(bot, params)
        if "text" not in sent.message:
            raise _bad("there is no text in the message to edit")
        text = params.text("text") or ""
        parse_mode = params.text("parse_mode")
        plain, entities = format_text(text, parse_mode, params.obj("entities"))
        _check_text(plain)
        content = {"text": plain, "entities": entities}
        raw = {"text": text, "parse_mode": parse_mode}
        return self._apply_edit(sent, content, self._inline_markup(params), raw)

    async def _edit_message_caption(self, bot: _BotState, params: _Params) -> object:
        sent = self._editable(bot, params)
        if "text" in sent.message:
            raise _bad("there is no caption in the message to edit")
        caption = params.text("caption") or ""
        parse_mode = params.text("parse_mode")
        plain, entities = format_text(caption, parse_mode, params.obj("caption_entities"))
        if len(plain) > MAX_CAPTION:
            raise _bad("message caption is too long")
        content = {"caption": plain, "caption_entities": entities}
        raw = {"caption": caption, "parse_mode": parse_mode}
        return self._apply_edit(sent, content, self._inline_markup(params), raw)

    async def _edit_message_reply_markup(self, bot: _BotState, params: _Params) -> object:
        sent = self._editable(bot, params)
        return self._apply_edit(sent, {}, self._inline_markup(params), {})

    async def _delete_message(self, bot: _BotState, params: _Params) -> object:
        chat = self._resolve_chat(params.raw("chat_id"))
        key = (chat["id"], params.integer("message_id") or 0)
        if bot.messages.pop(key, None) is None:
            raise _bad("message to delete not found")
        sent = bot.sent_index.get(key)
        if sent is not None:
            sent.deleted = True
        self._changed.fire()
        return True

    async def _answer_callback_query(self, bot: _BotState, params: _Params) -> object:
        query = bot.open_queries.pop(params.text("callback_query_id") or "", None)
        if query is None:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        message = query.get("message") or {}
        self._callback_answers.append(
            CallbackAnswer(
                query_id=query["id"],
                bot_id=bot.me["id"],
                user_id=query["from"]["id"],
                chat_id=message.get("chat", {}).get("id"),
                message_id=message.get("message_id"),
                data=query.get("data"),
                text=params.text("text"),
                show_alert=params.flag("show_alert"),
                url=params.text("url"),
                cache_time=params.integer("cache_time"),
            )
        )
        self._changed.fire()
        return True

    async def _send_chat_action(self, bot: _BotState, params: _Params) -> object:
        chat = self._writable_chat(bot, params)
        action = params.text("action")
        if action not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        self._chat_actions.append(ChatAction(bot.me["id"], chat["id"], action, time.time()))
        self._changed.fire()
        return True

    async def _get_file(self, bot: _BotState, params: _Params) -> object:
        stored = self._files.get(params.text("file_id") or "")
        if stored is None:
            raise _bad("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD:
            raise _bad("file is too big")
        return stored.as_file()

    # -- commands -------------------------------------------------------------------------

    def _command_key(self, params: _Params) -> tuple[tuple[object, ...], str]:
        scope = _scope_key(params.raw("scope"))
        return scope, _check_language(params.text("language_code"))

    async def _set_my_commands(self, bot: _BotState, params: _Params) -> object:
        commands = _check_commands(params.obj("commands"))
        key = self._command_key(params)
        if commands:
            bot.commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            bot.commands.pop(key, None)
        self._changed.fire()
        return True

    async def _get_my_commands(self, bot: _BotState, params: _Params) -> object:
        return bot.commands.get(self._command_key(params), [])

    async def _delete_my_commands(self, bot: _BotState, params: _Params) -> object:
        bot.commands.pop(self._command_key(params), None)
        self._changed.fire()
        return True

    # -- the fake human -------------------------------------------------------------------

    def send_text(self, user_id: int, text: str, **origin: Unpack[Origin]) -> JSONDict:
        """A user writes text; "/cmd args" and "/cmd@bot" get bot_command entities."""
        content: JSONDict = {"text": text}
        entities = _detect_entities(text)
        if entities:
            content["entities"] = entities
        return self._human_message(user_id, content, origin)

    def send_location(
        self, user_id: int, latitude: float, longitude: float, **origin: Unpack[Origin]
    ) -> JSONDict:
        """A user shares a location."""
        location = {"latitude": latitude, "longitude": longitude}
        return self._human_message(user_id, {"location": location}, origin)

    def send_photo(
        self, user_id: int, data: bytes, caption: str | None = None, **origin: Unpack[Origin]
    ) -> JSONDict:
        """A user sends a photo (PhotoSize list, largest last; bytes kept for getFile)."""
        stored = self._files.add_photo(data)
        return self._human_media(user_id, stored, caption, origin)

    def send_document(
        self,
        user_id: int,
        data: bytes,
        file_name: str = "dokument.pdf",
        mime_type: str = "application/pdf",
        caption: str | None = None,
        **origin: Unpack[Origin],
    ) -> JSONDict:
        """A user sends a file."""
        stored = self._files.add("document", data, file_name=file_name, mime_type=mime_type)
        return self._human_media(user_id, stored, caption, origin)

    def send_voice(
        self, user_id: int, data: bytes, duration: int = 1, **origin: Unpack[Origin]
    ) -> JSONDict:
        """A user sends a voice message (audio/ogg)."""
        stored = self._files.add("voice", data, duration=duration)
        return self._human_media(user_id, stored, None, origin)

    def send_video(
        self,
        user_id: int,
        data: bytes,
        duration: int = 1,
        caption: str | None = None,
        **origin: Unpack[Origin],
    ) -> JSONDict:
        """A user sends a 640x360 mp4 video."""
        stored = self._files.add("video", data, duration=duration, width=640, height=360)
        return self._human_media(user_id, stored, caption, origin)

    def send_sticker(self, user_id: int, emoji: str = "👍", **origin: Unpack[Origin]) -> JSONDict:
        """A user sends a sticker (content a text bot usually does not support)."""
        stored = self._files.add("sticker", b"RIFF\x00\x00\x00\x00WEBP", width=512, height=512)
        sticker = {**cast("JSONDict", media_object(stored)), "type": "regular", "emoji": emoji}
        sticker.update(is_animated=False, is_video=False)
        return self._human_message(user_id, {"sticker": sticker}, origin)

    def send_contact(
        self,
        user_id: int,
        phone_number: str = "+4915112345678",
        contact_first_name: str = "Max",
        **origin: Unpack[Origin],
    ) -> JSONDict:
        """A user shares a contact."""
        contact = {"phone_number": phone_number, "first_name": contact_first_name}
        return self._human_message(user_id, {"contact": contact}, origin)

    def send_poll(
        self,
        user_id: int,
        question: str = "Frage?",
        options: Iterable[str] = ("Ja", "Nein"),
        **origin: Unpack[Origin],
    ) -> JSONDict:
        """A user sends a poll."""
        poll = {
            "id": str(5_000_000_000_000_000_000 + self._next_query_number()),
            "question": question,
            "options": [
                {"text": text, "voter_count": 0, "persistent_id": str(index)}
                for index, text in enumerate(options)
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
        return self._human_message(user_id, {"poll": poll}, origin)

    def press(
        self,
        user_id: int,
        message_id: int,
        data: str,
        chat_id: int | None = None,
        *,
        check_button: bool = True,
        token: str | None = None,
    ) -> JSONDict:
        """A user presses an inline button of a bot message; returns the callback_query update."""
        bot = self._bot(token)
        chat_id = user_id if chat_id is None else chat_id
        sent = bot.sent_index.get((chat_id, message_id))
        if sent is None or sent.deleted:
            raise ValueError(f"no bot message {message_id} in chat {chat_id}")
        buttons = [b.get("callback_data") for b in sent.inline_buttons]
        if check_button and data not in buttons:
            raise ValueError(f"message {message_id} has no button {data!r}; it has {buttons}")
        query: JSONDict = {
            "id": str(4_000_000_000_000_000_000 + self._next_query_number()),
            "from": dict(self._ensure_user(user_id, Origin())),
            "message": dict(sent.message),
            "chat_instance": str((chat_id * 2_654_435_761) % 2**63),
            "data": data,
        }
        bot.open_queries[query["id"]] = query
        self._mark(bot, chat_id)
        return self._enqueue(bot, "callback_query", query)

    def hold_polls(self, hold: bool = True, *, token: str | None = None) -> None:
        """From now on (until `hold_polls(False)`), getUpdates calls hang and their offset
        is never applied: updates already fetched stay unacknowledged, as when a bot dies
        after handling them and before its next poll reached Telegram."""
        bot = self._bot(token)
        bot.holding_polls = hold
        bot.signal.fire()

    def block(self, user_id: int, *, notify: bool = True, token: str | None = None) -> None:
        """The user blocks the bot: sends to the private chat answer 403."""
        bot = self._bot(token)
        bot.blocked.add(user_id)
        if notify and user_id in self._users:
            self._enqueue(bot, "my_chat_member", self._member_update(bot, user_id, "kicked"))

    def unblock(self, user_id: int, *, notify: bool = True, token: str | None = None) -> None:
        """The user unblocks the bot."""
        bot = self._bot(token)
        bot.blocked.discard(user_id)
        if notify and user_id in self._users:
            self._enqueue(bot, "my_chat_member", self._member_update(bot, user_id, "member"))

    def _member_update(self, bot: _BotState, user_id: int, status: str) -> JSONDict:
        user = self._users[user_id]
        chat = self._ensure_chat(user, Origin(chat_id=user_id, chat_type="private"))
        old_status = "member" if status == "kicked" else "kicked"

        def member(state: str) -> JSONDict:
            entry: JSONDict = {"status": state, "user": bot.user}
            return {**entry, "until_date": 0} if state == "kicked" else entry

        return {
            "chat": dict(chat),
            "from": dict(user),
            "date": int(time.time()),
            "old_chat_member": member(old_status),
            "new_chat_member": member(status),
        }

    def _next_query_number(self) -> int:
        self._query_count += 1
        return self._query_count

    def _human_media(
        self, user_id: int, stored: StoredFile, caption: str | None, origin: Origin
    ) -> JSONDict:
        content: JSONDict = {stored.kind: media_object(stored)}
        if caption:
            content["caption"] = caption
        return self._human_message(user_id, content, origin)

    def _human_message(self, user_id: int, content: JSONDict, origin: Origin) -> JSONDict:
        bot = self._bot(origin.get("token"))
        user = self._ensure_user(user_id, origin)
        chat = self._ensure_chat(user, origin)
        message = self._new_message(bot, chat, user, content)
        reply_id = origin.get("reply_to_message_id")
        if reply_id is not None:
            target = bot.messages.get((chat["id"], reply_id))
            if target is None:
                raise ValueError(f"no message {reply_id} in chat {chat['id']} to reply to")
            message["reply_to_message"] = {
                k: v for k, v in target.items() if k != "reply_to_message"
            }
        self._mark(bot, chat["id"])
        return self._enqueue(bot, "message", message, self._privacy_allows(bot, chat, message))

    def _mark(self, bot: _BotState, chat_id: int) -> None:
        bot.marks[chat_id] = len(bot.sent_by_chat.get(chat_id, []))
        if bot.flood is not None:
            bot.flood.wrote(chat_id)

    def _privacy_allows(self, bot: _BotState, chat: JSONDict, message: JSONDict) -> bool:
        """Privacy mode: in groups only commands, mentions and replies to the bot arrive."""
        if chat["type"] == "private" or bot.me["can_read_all_group_messages"]:
            return True
        reply = message.get("reply_to_message")
        if reply is not None and reply.get("from", {}).get("id") == bot.me["id"]:
            return True
        text = str(message.get("text") or message.get("caption") or "")
        username = str(bot.me["username"]).lower()
        command = re.match(r"/[A-Za-z0-9_]+(?:@([A-Za-z0-9_]+))?", text)
        if command is not None:
            return command[1] is None or command[1].lower() == username
        return f"@{username}" in text.lower()

    def _enqueue(
        self, bot: _BotState, kind: str, payload: JSONDict, deliver: bool = True
    ) -> JSONDict:
        update = {"update_id": bot.next_update_id, kind: payload}
        bot.next_update_id += 1
        if deliver and bot.allows(kind):
            bot.updates.append(update)
            bot.signal.fire()
        return update

    # -- reading what the bot did ---------------------------------------------------------

    def messages_to(self, chat_id: int, *, token: str | None = None) -> list[SentMessage]:
        """Messages the bot sent to a chat, oldest first (deleted ones flagged)."""
        return list(self._bot(token).sent_by_chat.get(chat_id, []))

    def sent_messages(self, *, token: str | None = None) -> list[SentMessage]:
        """All messages the bot sent, in order."""
        return list(self._bot(token).sent)

    @property
    def sent_count(self) -> int:
        """Accepted sends over all bots (rejected ones are not counted)."""
        return self._sent_count

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        """answerCallbackQuery calls, oldest first."""
        return list(self._callback_answers)

    @property
    def chat_actions(self) -> list[ChatAction]:
        """sendChatAction calls, oldest first."""
        return list(self._chat_actions)

    @property
    def calls(self) -> list[ApiCall]:
        """Every Bot API request with its status, oldest first."""
        return list(self._calls)

    def commands(
        self,
        scope: str | Mapping[str, Any] = "default",
        language_code: str = "",
        *,
        token: str | None = None,
    ) -> list[JSONDict]:
        """Commands stored for exactly this scope and language."""
        key = (_scope_key(dict(scope) if isinstance(scope, Mapping) else scope), language_code)
        return list(self._bot(token).commands.get(key, []))

    def pending_updates(self, *, token: str | None = None) -> list[JSONDict]:
        """Updates not yet acknowledged (getUpdates) or delivered (webhook)."""
        return list(self._bot(token).updates)

    def webhook_info(self, token: str | None = None) -> JSONDict:
        """The getWebhookInfo answer."""
        bot = self._bot(token)
        info: JSONDict = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }
        hook = bot.webhook
        if hook is None:
            return info
        info.update(
            url=hook.url,
            has_custom_certificate=hook.has_custom_certificate,
            max_connections=hook.max_connections,
        )
        optional = {
            "ip_address": hook.ip_address,
            "last_error_date": hook.last_error_date,
            "last_error_message": hook.last_error_message,
            "allowed_updates": bot.allowed_updates or None,
        }
        info.update({key: value for key, value in optional.items() if value is not None})
        return info

    def file_bytes(self, file_id: str) -> bytes:
        """The content of a stored file."""
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(file_id)
        return stored.data

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[SentMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - the test API reads best with a timeout
        after: int | None = None,
        *,
        token: str | None = None,
    ) -> SentMessage:
        """Wait for a bot message to the chat at index >= ``after``.

        ``after=None`` continues from a cursor: the last fake-human action in the chat, or
        just past the message this method returned last for the chat.
        """
        bot = self._bot(token)
        start = bot.marks.get(chat_id, 0) if after is None else after
        found: list[tuple[int, SentMessage]] = []

        def match() -> bool:
            sent = bot.sent_by_chat.get(chat_id, [])
            for index in range(start, len(sent)):
                if predicate is None or predicate(sent[index]):
                    found.append((index, sent[index]))
                    return True
            return False

        if not await self._changed.wait_for(match, timeout):
            texts = [m.plain_text for m in bot.sent_by_chat.get(chat_id, [])]
            raise TimeoutError(
                f"no matching bot message to chat {chat_id} from index {start} within "
                f"{timeout}s; sent so far: {texts}"
            )
        index, message = found[0]
        if after is None:
            bot.marks[chat_id] = index + 1
        return message

    def _chat_changed(self, chat_id: int) -> _Signal:
        signal = self._chats_changed.get(chat_id)
        if signal is None:
            signal = self._chats_changed[chat_id] = _Signal()
        return signal

    async def wait_in_chat(
        self,
        chat_id: int,
        condition: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the test API reads best with a timeout
    ) -> None:
        """Wait until ``condition()`` holds, looking again only when the bot sends or edits
        a message in the chat (cheap with many people waiting at once)."""
        if not await self._chat_changed(chat_id).wait_for(condition, timeout):
            raise TimeoutError(f"condition in chat {chat_id} not met within {timeout}s")

    async def wait_until(
        self,
        condition: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the test API reads best with a timeout
    ) -> None:
        """Wait until ``condition()`` holds after something the bot did."""
        if not await self._changed.wait_for(condition, timeout):
            raise TimeoutError(f"condition not met within {timeout}s")

    # -- fault injection ------------------------------------------------------------------

    def fail_next(self, method: str, status: int = 500, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` answer HTTP ``status`` (unprocessed)."""
        self._faults.append(_Fault(method.lower(), count, _http_error(status)))

    def retry_after_next(self, seconds: int, method: str | None = None, count: int = 1) -> None:
        """The next ``count`` sends (or calls of ``method``) answer 429 retry_after."""
        self._faults.append(_Fault(method and method.lower(), count, _too_many(seconds)))


def _default_chat_type(chat_id: int) -> str:
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith("-100") else "group"
