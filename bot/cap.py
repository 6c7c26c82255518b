"""An alert as an OASIS Common Alerting Protocol 1.2 document (one <info> per language)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.core.i18n import Content
from bot.storage.models import Broadcast

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
# severity -> (urgency, severity, certainty) in CAP's vocabulary
MAPPING = {
    "info": ("Expected", "Minor", "Possible"),
    "warning": ("Expected", "Moderate", "Likely"),
    "urgent": ("Immediate", "Severe", "Likely"),
}


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
        add(info, "event", content.label(lang, "alert_topics", broadcast.topic))
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
                severity=content.label(lang, "alert_severity", broadcast.severity),
                topic=content.label(lang, "alert_topics", broadcast.topic),
            ),
        )
        add(info, "description", str(text))
        area = ET.SubElement(info, f"{{{CAP_NS}}}area")
        regions = broadcast.regions or [oid for oid, _ in content.options(lang, "regions")]
        add(area, "areaDesc", ", ".join(content.label(lang, "regions", r) for r in regions))
    ET.indent(alert)
    return bytes(ET.tostring(alert, encoding="utf-8", xml_declaration=True))
