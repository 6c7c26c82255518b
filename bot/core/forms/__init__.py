"""The declarative form engine used by onboarding, settings, reports and broadcasts.

A form is a tuple of steps (`model`); what a typed answer means is a pure function
(`parsing`); what a form shows is `rendering`; `engine` runs a person's draft.
"""

from bot.core.forms.engine import FORMS, applicable, handle, hold, register, resume, start
from bot.core.forms.model import (
    TYPED,
    UNKNOWN,
    Answers,
    Form,
    FormState,
    Input,
    Invalid,
    Step,
)
from bot.core.forms.parsing import parse_moment, parse_number, parse_typed
from bot.core.forms.rendering import render, summary

__all__ = [
    "FORMS",
    "TYPED",
    "UNKNOWN",
    "Answers",
    "Form",
    "FormState",
    "Input",
    "Invalid",
    "Step",
    "applicable",
    "handle",
    "hold",
    "parse_moment",
    "parse_number",
    "parse_typed",
    "register",
    "render",
    "resume",
    "start",
    "summary",
]
