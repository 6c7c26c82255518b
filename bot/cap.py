"""An alert as an OASIS Common Alerting Protocol 1.2 document (one <info> per language).

For warning systems that ingest it (MoWaS and the like): `<event>` and `<headline>` are
plain text (the labels from content without their emoji), and each region of the alert is
an `<area>` with its official codes as `<geocode>`s (`content/areas.yaml`).
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.core.i18n import Content, load_yaml
from bot.storage.models import Broadcast

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
# severity -> (urgency, severity, certainty) in CAP's vocabulary
MAPPING = {
    "info": ("Expected", "Minor", "Possible"),
    "warning": ("Expected", "Moderate", "Likely"),
    "urgent": ("Immediate", "Severe", "Likely"),
}


# Parts of emoji that are not symbols themselves: variation selectors, "ℹ".
EMOJI_EXTRAS = frozenset("\ufe0e\ufe0f\u2139")


@dataclass(frozen=True, slots=True)
class Area:
    """A region as an official area: its name and codes (`content/areas.yaml`)."""

    name: str
    geocodes: tuple[tuple[str, str], ...]


@cache
def areas(directory: Path) -> dict[str, Area]:
    """The regions' official areas from `areas.yaml` in the content directory."""
    raw = load_yaml(directory / "areas.yaml")
    found = raw.get("areas") if isinstance(raw, dict) else None
    if not isinstance(found, dict):
        return {}
    return {
        str(region): Area(
            str(entry.get("name", region)),
            tuple((str(k), str(v)) for k, v in (entry.get("geocodes") or {}).items()),
        )
        for region, entry in found.items()
        if isinstance(entry, dict)
    }


def plain(label: str) -> str:
    """A label without its emoji ("📦 Ladungsdiebstahl" -> "Ladungsdiebstahl"): symbols,
    variation selectors and joiners go; "ℹ" (a letter-like symbol) too."""
    kept = "".join(
        ch
        for ch in label
        if unicodedata.category(ch) not in ("So", "Sk", "Cf") and ch not in EMOJI_EXTRAS
    )
    return re.sub(r"\s+", " ", kept).strip()


def _when(moment: datetime, tz: ZoneInfo) -> str:
    """CAP wants seconds and an explicit offset: 2026-11-24T14:30:00+01:00."""
    return moment.astimezone(tz).replace(microsecond=0).isoformat()


def cap_document(broadcast: Broadcast, settings: Settings, content: Content) -> bytes:
    tz = ZoneInfo(settings.bot.timezone)
    ET.register_namespace("", CAP_NS)

    def add(parent: ET.Element, tag: str, text: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
        element.text = text
        return element

    alert = ET.Element(f"{{{CAP_NS}}}alert")
    add(alert, "identifier", f"{settings.bot.reference_prefix}-ALERT-{broadcast.id}")
    add(alert, "sender", settings.bot.privacy_contact.replace(" ", ""))
    add(alert, "sent", _when(broadcast.send_at, tz))
    add(alert, "status", "Actual")
    add(alert, "msgType", "Alert")
    add(alert, "scope", "Public")
    urgency, severity, certainty = MAPPING.get(broadcast.severity, MAPPING["warning"])
    for lang, text in broadcast.texts.items():
        info = ET.SubElement(alert, f"{{{CAP_NS}}}info")
        add(info, "language", lang)
        add(info, "category", "Security")
        topic = plain(content.label(lang, "alert_topics", broadcast.topic))
        add(info, "event", topic)
        add(info, "urgency", urgency)
        add(info, "severity", severity)
        add(info, "certainty", certainty)
        add(info, "expires", _when(broadcast.expires_at, tz))
        add(info, "senderName", settings.bot.operator)
        add(
            info,
            "headline",
            content.text(
                lang,
                "alerts.message_title",
                severity=plain(content.label(lang, "alert_severity", broadcast.severity)),
                topic=topic,
            ),
        )
        add(info, "description", str(text))
        known = areas(content.directory)
        regions = broadcast.regions or [oid for oid, _ in content.options(lang, "regions")]
        for region in regions:
            area = ET.SubElement(info, f"{{{CAP_NS}}}area")
            found = known.get(region)
            add(area, "areaDesc", found.name if found else content.label(lang, "regions", region))
            for name, value in found.geocodes if found else ():
                geocode = ET.SubElement(area, f"{{{CAP_NS}}}geocode")
                add(geocode, "valueName", name)
                add(geocode, "value", value)
    ET.indent(alert)
    return bytes(ET.tostring(alert, encoding="utf-8", xml_declaration=True))
