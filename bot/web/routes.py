"""Every URL of the bot's HTTP server, in one place."""

from __future__ import annotations

from pathlib import Path

import xstatic.pkg.leaflet
import xstatic.pkg.leaflet_markercluster
from aiohttp import web

from bot.web import admin, alert_templates, alerts, annual, health, statistics, views
from bot.web.metrics import metrics_view

STATIC = Path(__file__).parent / "static"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", metrics_view)


def setup_console_routes(app: web.Application) -> None:
    """The coordinator console (see bot/web/views.py)."""
    add = app.router
    add.add_get("/console/login/{token}", views.login_page)
    add.add_post("/console/login", views.login)
    add.add_post("/console/logout", views.logout)
    add.add_post("/console/language", views.language)
    add.add_get("/console/", views.inbox)
    add.add_get("/console/map", views.map_page)
    add.add_get("/console/map.json", views.map_points)
    add.add_get("/console/reports/{reference}", views.report_page)
    add.add_get("/console/reports/{reference}/print", views.print_page)
    add.add_get("/console/reports/{reference}/pdf", views.pdf)
    add.add_post("/console/reports/{reference}/status", views.set_status)
    add.add_post("/console/reports/{reference}/reply", views.reply)
    add.add_get("/console/media/{sha256}", views.media_file)
    add.add_get("/console/alerts", alerts.alerts_page)
    add.add_get("/console/alerts/new", alerts.compose_page)
    add.add_get("/console/alerts/reach.json", alerts.reach)
    add.add_post("/console/alerts", alerts.send)
    add.add_post("/console/alerts/{id}/cancel", alerts.cancel)
    add.add_get("/console/alerts/{id}/cap.xml", alerts.cap)
    add.add_get("/console/templates", alert_templates.templates_page)
    add.add_post("/console/templates", alert_templates.save)
    add.add_get("/console/templates/{id}", alert_templates.edit_page)
    add.add_post("/console/templates/{id}/delete", alert_templates.delete)
    add.add_get("/console/statistics", statistics.statistics_page)
    add.add_get("/console/statistics/{figure}.csv", statistics.statistics_csv)
    add.add_get("/console/annual", annual.annual_page)
    add.add_get("/console/annual.pdf", annual.annual_pdf_view)
    add.add_get("/console/admin", admin.coordinators_page)
    add.add_post("/console/admin/coordinators", admin.change_coordinator)
    add.add_get("/console/admin/audit", admin.audit_page)
    add.add_get("/console/admin/audit.csv", admin.audit_csv)
    add.add_static("/console/static/app", STATIC)
    add.add_static("/console/static/leaflet", xstatic.pkg.leaflet.BASE_DIR)
    add.add_static("/console/static/markercluster", xstatic.pkg.leaflet_markercluster.BASE_DIR)
