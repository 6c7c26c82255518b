"""Feature modules. `routers()` lists them in the order they are composed."""

from __future__ import annotations

from bot.core.router import Router


def routers() -> list[Router]:
    from handlers import (
        access,
        admin,
        alert_templates,
        alerts,
        broadcast,
        console,
        coordinator,
        menu,
        onboarding,
        privacy,
        report,
        settings,
        tips,
    )

    return [
        access.router,
        onboarding.router,
        report.router,
        coordinator.router,
        console.router,
        admin.router,
        alerts.router,
        broadcast.router,
        alert_templates.router,
        settings.router,
        tips.router,
        privacy.router,
        menu.router,
    ]
