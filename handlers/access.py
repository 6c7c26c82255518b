"""The access table: who may use every command, choice namespace and dialogue.

This is the one place that says who may do what; the Core checks it for every event
(see bot/core/access.py for the rule semantics) and refuses to start if an entry point
of any handler module is missing here. A refusal is answered politely and written to the
audit log (action "refused").

- PUBLIC: anyone, also before onboarding and consent (help, tips, the silent-alarm guide).
- EVERYONE: every role once onboarded (coordinators named in the config need no
  onboarding); someone who has not agreed yet is onboarded first.
- COORDINATORS: only coordinators (named in the config, or added by an admin).
- ADMINS: only the admins named in the config, on top of the command's own rule.
- PERSONAL: like EVERYONE, but answered only in a direct chat: a person's own data, their
  report dialogue (its questions show earlier answers), their settings. In a group or a
  room with others the bot says to write to it directly.
"""

from __future__ import annotations

from bot.core.access import ADMIN, COORDINATOR, EVERYONE, PERSONAL, PUBLIC, Rule, only, table
from bot.core.router import Router

COORDINATORS = only(COORDINATOR)
ADMINS = only(ADMIN, refusal="admin.only_admins")

ACCESS = table(
    # Onboarding, help and the way out: before consent too.
    (("/menu", "/help", "/cancel", "/stop"), PUBLIC),
    # Onboarding asks for consent, role and region: in a direct chat.
    (("/start", "onb", "lang"), Rule(public=True, private=True)),
    # Prevention tips and the silent-alarm guide: no time for menus in trouble.
    (("/tips", "/tipps", "/porady", "/alarm", "/stiller_alarm", "tip"), PUBLIC),
    # Reporting and one's own reports.
    (("/report", "/melden", "/zglos", "rep", "/myreports", "/details", "repd"), PERSONAL),
    # One's own alert subscription, and "Understood" under an alert one received.
    (("/alerts", "alt", "alf"), PERSONAL),
    (("ack",), EVERYONE),
    # One's own profile and data.
    (("/settings", "set", "setf", "/mydata", "/delete_me", "/deleteme", "priv"), PERSONAL),
    # Shared state: triage of reports, alerts to many people, the list of coordinators.
    (("/triage", "tri", "trn", "/reports", "rpt", "/reply", "rrp", "rrpf"), COORDINATORS),
    (("/broadcast", "bc", "bcp", "/broadcast_status", "/broadcasts", "bcx"), COORDINATORS),
    (("/alert_template", "/alert_templates", "atp", "atpx"), COORDINATORS),
    (("/coordinators",), COORDINATORS),
    # The web console's one-time login link.
    (("/console",), COORDINATORS),
    (("/coordinators add", "/coordinators remove"), ADMINS),
)

router = Router("access", access=ACCESS)
