"""The process's Prometheus metrics, served at /metrics (bot/web/metrics.py).

Counters and the latency histogram are kept here, where the pipeline and the transports
report to them (`bot.logs.ACTIVITY` forwards); what the database holds (outbox rows and
reports by status) is read when /metrics is asked. One registry per process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

UPDATES = Counter(
    "sicherheitsbot_updates_handled",
    "Events (messages, commands, button presses, console actions) handled, per door",
    ["transport"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "sicherheitsbot_update_handling_seconds",
    "Time from an event's arrival at the Core to its committed replies, per door",
    ["transport"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
THROTTLED = Counter(
    "sicherheitsbot_people_throttled",
    "Events not read because their sender was over the flood limit (a flood pause)",
    ["transport"],
    registry=REGISTRY,
)
FLOOD_WAITS = Counter(
    "sicherheitsbot_platform_flood_waits",
    "429 Too Many Requests answers from a chat platform (sending paused for retry_after)",
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "sicherheitsbot_outbox_deliveries",
    "Outbox messages delivered or given up by this process",
    ["outcome"],
    registry=REGISTRY,
)
OUTBOX = Gauge(
    "sicherheitsbot_outbox_messages",
    "Outbox rows by status (pending: queued or being sent)",
    ["status"],
    registry=REGISTRY,
)
REPORTS = Gauge("sicherheitsbot_reports", "Reports by status", ["status"], registry=REGISTRY)
LEADER = Gauge(
    "sicherheitsbot_scheduler_leader",
    "1 while this process runs the scheduled jobs (the leader), else 0",
    registry=REGISTRY,
)
