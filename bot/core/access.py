"""Who may do what: the rules of one declarative access table, checked by the Core.

The table itself is feature knowledge and lives with the features (`handlers/access.py`);
this module only says what a rule is and how a person is matched against it. Keys are

- `/command` — a command (every alias is its own key),
- `/command word` — a sub-action: the first word of the arguments (`/coordinators add`);
  a person must pass the command's rule *and* the sub-action's rule,
- `namespace` — a choice namespace (`tri` for `tri:12:police`) or a dialogue (flow) name;
  a dialogue's rule is checked for every event that reaches the dialogue, so someone who
  lost a right in the middle of a dialogue cannot finish it.

The Core refuses to start when a registered command, choice namespace or dialogue has no
rule, or when a rule names nothing registered: the table is complete by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Pseudo-roles, beside the roles from content (truck_driver, taxi_driver, ...).
COORDINATOR = "coordinator"
ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may use one entry point."""

    # None: everyone (every role, coordinators, admins); else the roles allowed.
    roles: frozenset[str] | None = None
    # Usable before onboarding and consent (tips, the silent-alarm guide, help).
    public: bool = False
    # Content key of the polite refusal.
    refusal: str = "core.not_allowed"
    # Personal: answered only in a direct chat with the person (never in a group or a room
    # with others, where a stranger would read someone's data).
    private: bool = False

    def admits(self, who: frozenset[str]) -> bool:
        return self.public or self.roles is None or bool(self.roles & who)


PUBLIC = Rule(public=True)
EVERYONE = Rule()


def only(*roles: str, refusal: str = "core.not_allowed") -> Rule:
    """A rule for the named roles only."""
    return Rule(roles=frozenset(roles), refusal=refusal)


PERSONAL = Rule(private=True)


def table(*groups: tuple[Iterable[str], Rule]) -> dict[str, Rule]:
    """Build a table from (keys, rule) groups; a key given twice is an error."""
    found: dict[str, Rule] = {}
    for keys, rule in groups:
        for key in keys:
            if key in found:
                raise ValueError(f"access rule for {key!r} given twice")
            found[key] = rule
    return found


def sub_action(name: str, args: str) -> str:
    """The table key of a command's sub-action: `/coordinators add`."""
    word = args.split(maxsplit=1)[0].lower() if args.strip() else ""
    return f"/{name} {word}" if word else ""


def check_complete(
    rules: Mapping[str, Rule], commands: Iterable[str], namespaces: Iterable[str]
) -> None:
    """Raise ValueError unless every entry point has a rule and every rule an entry point."""
    wanted = {f"/{name}" for name in commands} | set(namespaces)
    missing = sorted(wanted - set(rules))
    if missing:
        raise ValueError(f"no access rule for {', '.join(missing)} (add it to the table)")
    stale = sorted(key for key in rules if key not in wanted and key.split(" ", 1)[0] not in wanted)
    if stale:
        raise ValueError(f"access rule for unknown {', '.join(stale)}")
