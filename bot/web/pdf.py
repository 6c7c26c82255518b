"""A report as a one-page A4 PDF, for handing to the police (fpdf2, pure Python; the font is
Noto Sans from the `fontpkg-noto-sans` package, so German, Polish and the other Latin
scripts print as written). Photos are embedded; other files are listed by kind.
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import fontpkg_noto_sans
from fpdf import FPDF

from bot.core.i18n import Content
from bot.core.media import MediaStore
from bot.web.sheet import Sheet

log = logging.getLogger(__name__)
FONT = Path(fontpkg_noto_sans.ROOT) / "files" / "NotoSans[wdth,wght].ttf"
PHOTO_WIDTH = 55.0  # mm
PHOTOS = 3


def printable(text: str) -> str:
    """The text without pictographs (the font has none): "👮 Passed to police" prints as
    "Passed to police"."""
    kept = "".join(
        ch for ch in text if unicodedata.category(ch) not in ("So", "Cn", "Co", "Cs")
        and ch != "\ufe0f"
    )  # fmt: skip
    return " ".join(kept.split()) if "\n" not in kept else kept.strip()


def report_pdf(sheet: Sheet, content: Content, lang: str, media: MediaStore, footer: str) -> bytes:
    """The report's PDF."""
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(auto=True, margin=14)
    pdf.add_font("Noto", "", str(FONT), variations={"wght": 400.0})
    pdf.add_font("Noto", "B", str(FONT), variations={"wght": 700.0})
    pdf.set_title(sheet.reference)
    pdf.add_page()
    pdf.set_margins(16, 14, 16)
    pdf.set_font("Noto", "B", 18)
    pdf.cell(
        0, 9, printable(f"{sheet.reference} · {sheet.category}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Noto", "", 10)
    status = content.text(lang, "console.col_status")
    received = content.text(lang, "console.received")
    pdf.cell(
        0, 6, printable(f"{received}: {sheet.received} · {status}: {sheet.status_label}"),
        new_x="LMARGIN", new_y="NEXT",
    )  # fmt: skip
    if sheet.latitude is not None and sheet.longitude is not None:
        pdf.cell(
            0, 6, f"{sheet.latitude:.5f}, {sheet.longitude:.5f}", new_x="LMARGIN", new_y="NEXT"
        )
    for section in sheet.sections:
        _heading(pdf, section.title)
        for line in section.lines:
            pdf.set_font("Noto", "B", 10)
            pdf.cell(50, 6, printable(line.label))
            pdf.set_font("Noto", "", 10)
            pdf.multi_cell(0, 6, printable(line.value), new_x="LMARGIN", new_y="NEXT")
    _heading(pdf, content.text(lang, "console.section_contact"))
    pdf.set_font("Noto", "", 10)
    pdf.multi_cell(0, 6, printable(sheet.contact), new_x="LMARGIN", new_y="NEXT")
    if sheet.note:
        pdf.multi_cell(
            0, 6, printable(f"{content.text(lang, 'console.status_note')}: {sheet.note}"),
            new_x="LMARGIN", new_y="NEXT",
        )  # fmt: skip
    photos = [item for item in sheet.files if item.kind == "photo"][:PHOTOS]
    if sheet.files:
        _heading(pdf, content.text(lang, "console.section_files"))
        pdf.set_font("Noto", "", 9)
        others = [item for item in sheet.files if item not in photos]
        for item in others:
            pdf.cell(0, 5, f"{item.kind}: {item.sha256[:12]}", new_x="LMARGIN", new_y="NEXT")
        x, y = pdf.l_margin, pdf.get_y() + 2
        for item in photos:
            try:
                pdf.image(str(media.path_for(item.sha256)), x=x, y=y, w=PHOTO_WIDTH)
            except Exception as exc:  # a photo fpdf2 cannot read: listed, not drawn
                log.warning("photo not embedded in a report PDF: %s", type(exc).__name__)
                pdf.set_xy(x, y)
                pdf.cell(PHOTO_WIDTH, 5, f"photo: {item.sha256[:12]}")
            x += PHOTO_WIDTH + 4
    pdf.set_auto_page_break(auto=False)
    pdf.set_y(-16)
    pdf.set_font("Noto", "", 8)
    pdf.cell(0, 5, printable(footer), align="C")
    return bytes(pdf.output())


def _heading(pdf: FPDF, title: str) -> None:
    pdf.ln(2)
    pdf.set_font("Noto", "B", 12)
    pdf.cell(0, 7, printable(title), new_x="LMARGIN", new_y="NEXT", border="B")
    pdf.ln(1)


def annual_pdf(title: str, columns: list[str], rows: list[list[str]],
               extra: list[tuple[str, list[tuple[str, str]]]], footer: str) -> bytes:  # fmt: skip
    """The annual summary on one A4 page (landscape): a table by group with its total row
    last, then smaller tables (`extra`: a heading and label/value lines)."""
    pdf = FPDF(orientation="L", format="A4", unit="mm")
    pdf.set_auto_page_break(auto=True, margin=14)
    pdf.add_font("Noto", "", str(FONT), variations={"wght": 400.0})
    pdf.add_font("Noto", "B", str(FONT), variations={"wght": 700.0})
    pdf.set_title(printable(title))
    pdf.add_page()
    pdf.set_margins(16, 14, 16)
    pdf.set_font("Noto", "B", 16)
    pdf.multi_cell(0, 8, printable(title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    first = 75.0
    width = (pdf.w - pdf.l_margin - pdf.r_margin - first) / max(1, len(columns) - 1)
    pdf.set_font("Noto", "B", 9)
    for index, column in enumerate(columns):
        pdf.cell(first if index == 0 else width, 7, printable(column), border="B",
                 align="L" if index == 0 else "R")  # fmt: skip
    pdf.ln()
    for number, row in enumerate(rows):
        pdf.set_font("Noto", "B" if number == len(rows) - 1 else "", 10)
        for index, value in enumerate(row):
            pdf.cell(first if index == 0 else width, 6, printable(value),
                     border="T" if number == len(rows) - 1 else 0,
                     align="L" if index == 0 else "R")  # fmt: skip
        pdf.ln()
    for heading, lines in extra:
        _heading(pdf, heading)
        pdf.set_font("Noto", "", 10)
        for label, value in lines:
            pdf.cell(first, 6, printable(label))
            pdf.cell(width, 6, value, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_auto_page_break(auto=False)
    pdf.set_y(-16)
    pdf.set_font("Noto", "", 8)
    pdf.cell(0, 5, printable(footer), align="C")
    return bytes(pdf.output())
