"""/metrics: the process's counters (bot/metrics.py) and what the database holds now
(outbox rows and reports by status), in Prometheus' text format."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot import metrics
from bot.storage import console

log = logging.getLogger(__name__)
ENGINE = web.AppKey("metrics_engine", AsyncEngine)
PENDING = ("queued", "sending")


async def metrics_view(request: web.Request) -> web.Response:
    try:
        async with AsyncSession(request.app[ENGINE]) as session:
            outbox = await console.outbox_by_status(session)
            reports = await console.counts_by_status(session)
    except Exception as exc:  # the counters still answer without the database
        log.warning("metrics: database not read (%s)", type(exc).__name__)
    else:
        metrics.OUTBOX.labels("pending").set(sum(outbox.get(s, 0) for s in PENDING))
        for status in ("sent", "failed", "expired"):
            metrics.OUTBOX.labels(status).set(outbox.get(status, 0))
        for status in {"new", "ack", "police", "closed", *reports}:
            metrics.REPORTS.labels(status).set(reports.get(status, 0))
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
