"""Prometheus metrics of one process (prometheus-client), served at `/metrics`.

Every long-running process (`outreach run`, `serve`, `worker dispatch|relay|schedule`) owns
one `Metrics`, with a registry of its own (never the library's global one: two processes'
worth of metrics in one test run must not collide), and passes it to the components that
count. The components that are not given one count into a private registry nobody reads.

Labels are bounded: an outcome is one of a few words, an error code is a provider's number
or one of our short symbolic codes (anything else is "other"), a partition is a partition
number. Never a number, a name, a body, a campaign or patient id: PHI stays out of metrics
as it stays out of logs.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

SENT, FAILED, UNKNOWN = "sent", "failed", "unknown"
OUTCOMES: Final = (SENT, FAILED, UNKNOWN)
NO_CODE: Final = "none"
OTHER_CODE: Final = "other"
# Twilio's error codes are numbers of 5 digits, HTTP statuses 3; ours are short words
# ("connection", "timeout", "not-found"…, see gateways.twilio_sms and workers.dispatcher).
_NUMERIC_CODE = re.compile(r"\d{3,5}")
_SYMBOLIC_CODE = re.compile(r"[a-z][a-z0-9-]{1,19}")

# Seconds from "due" to the provider's answer: a send due now normally goes within a second
# or two; pacing under the rate cap spreads a backlog over minutes, a window closing over
# hours (a text due at 19:59 may go at 11:00 the next sending day).
LATENCY_BUCKETS: Final = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
                          4 * 3600, 16 * 3600, 48 * 3600)

WEBHOOK_PATHS: Final = frozenset({"/webhooks/twilio/sms", "/webhooks/twilio/status",
                                  "/healthz", "/readyz", "/metrics"})


def outreach_version() -> str:
    try:
        return version("outreach")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def code_label(code: str | None) -> str:
    """A provider's error code as a label value from a bounded set."""
    if not code:
        return NO_CODE
    code = code.strip()
    if _NUMERIC_CODE.fullmatch(code) or _SYMBOLIC_CODE.fullmatch(code):
        return code
    return OTHER_CODE


class Metrics:
    """The process's metrics. `for_process()` adds the standard process collectors (CPU,
    memory, open files, start time, GC) and is what a process serves; a bare `Metrics()` is
    for components built without one (tests, benchmarks, `run --simulate`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge("outreach_build_info", "Always 1; the version as a label.",
                                ["version"], registry=r)
        self.build_info.labels(outreach_version()).set(1)
        self.sends = Counter(
            "outreach_sends", "Provider calls by outcome (sent: accepted; failed: refused or "
            "not made; unknown: the answer was lost, reconciled before any retry) and error "
            "code (the provider's number or a short word; none when accepted).",
            ["outcome", "code"], registry=r)
        self.intents_consumed = Counter(
            "outreach_intents_consumed", "Send-intents taken from the bus and handled by the "
            "dispatcher (redeliveries included).", registry=r)
        self.intents_published = Counter(
            "outreach_intents_published", "Send-intents the scheduler published.", registry=r)
        self.consumer_lag = Gauge(
            "outreach_consumer_lag", "Send-intents on the topic not yet done by the consumer "
            "group: the partition's end offset minus the group's committed offset (its "
            "position before the first commit), for the partitions this dispatcher owns; "
            "measured every few seconds.", ["partition"], registry=r)
        self.relay_behind = Gauge(
            "outreach_relay_positions_behind", "Stored events not yet relayed to Kafka: the "
            "highest notification id in the event store minus the relay's position.",
            registry=r)
        self.relay_published = Counter(
            "outreach_relay_events_published", "Events the relay published to the events "
            "topic (acknowledged by the broker).", registry=r)
        self.dispatch_latency = Histogram(
            "outreach_dispatch_latency_seconds", "From the time a send was due (the intent's "
            "due time) to the provider's answer, on the application clock: waiting for the "
            "scheduler, the bus, pacing under the rate cap and the call itself. Sends that "
            "found the window closed are deferred, not observed.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.rate_cap_deferrals = Counter(
            "outreach_rate_cap_deferrals", "Sends the dispatcher deferred because the "
            "campaign's rate cap (or its pacing) had no room.", registry=r)
        self.retries_scheduled = Counter(
            "outreach_retries_scheduled", "Failed attempts for which another attempt was "
            "scheduled (transient failures under the attempt limit).", registry=r)
        self.http_responses = Counter(
            "outreach_http_responses", "Responses of `outreach serve` by path (webhooks, "
            "probes; any other path is 'other') and status code.", ["path", "status"],
            registry=r)

    @classmethod
    def for_process(cls) -> Metrics:
        metrics = cls()
        ProcessCollector(registry=metrics.registry)
        PlatformCollector(registry=metrics.registry)
        GCCollector(registry=metrics.registry)
        return metrics

    # -- counting ------------------------------------------------------------------------
    def send(self, outcome: str, code: str | None = None) -> None:
        self.sends.labels(outcome, NO_CODE if outcome == SENT else code_label(code)).inc()

    def http_response(self, path: str, status: int) -> None:
        self.http_responses.labels(path if path in WEBHOOK_PATHS else "other",
                                   str(status)).inc()

    def partition_lag(self, lag: dict[int, int]) -> None:
        """The lag of the partitions owned now; partitions no longer owned are dropped, so
        the sum over a group's dispatchers counts each partition once."""
        self.consumer_lag.clear()
        for partition, behind in lag.items():
            self.consumer_lag.labels(str(partition)).set(max(0, behind))

    # -- exposing ------------------------------------------------------------------------
    def render(self) -> bytes:
        """The text exposition format (CONTENT_TYPE)."""
        return bytes(generate_latest(self.registry))
