"""JSON log lines, the log book behind `GET R/logs` and the live tail, and Prometheus metrics.

Request context (trace, correlation, step) travels in contextvars set per request or delivery,
never on shared objects, so concurrent executions cannot mix their ids."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cfp.domain.documents import Filter, Page, SetDoc
from cfp.domain.paths import Scope
from cfp.ports import DocumentStore

trace_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("cfp_trace", default=None)
correlation_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "cfp_correlation", default=None
)
step_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("cfp_step", default=None)
flows_var: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "cfp_flows", default=None
)

RESERVED = ("level", "msg", "time")
# what this process serves, set once by the composition root, for lines logged outside a step
PROCESS_IDENTITY: dict[str, str | None] = {"tenant": None, "project": None, "env": None}
LEVELS = ("debug", "info", "warn", "error")


class LogBook:
    """Writes each log line to stdout as JSON, keeps it for `GET R/logs`, feeds live tails."""

    def __init__(
        self,
        documents: DocumentStore,
        scope: Scope,
        *,
        stream: TextIO | None = None,
        min_level: str = "info",
    ) -> None:
        self.documents = documents
        self.scope = scope
        self.stream = stream or sys.stdout
        self.min_rank = LEVELS.index(min_level) if min_level in LEVELS else 1
        self._pending: list[SetDoc] = []
        self._seq = itertools.count()
        self._tails: set[Callable[[dict[str, Any]], None]] = set()
        self._flusher: asyncio.Task[None] | None = None

    def log(self, level: str, msg: str, extra: dict[str, Any] | None = None, **fields: Any) -> None:
        """One JSON line with level, time, ids and the extra keys (which never win over them).
        Lines below the book's level are dropped: not printed, stored or tailed."""
        if (LEVELS.index(level) if level in LEVELS else len(LEVELS)) < self.min_rank:
            return
        now = time.time()
        line: dict[str, Any] = {}
        for source in (extra or {}), fields:
            for key, value in source.items():
                if key not in RESERVED:
                    line[key] = value
        line.update(
            level=level,
            time=datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            msg=str(msg),
            tenant=self.scope.tenant,
            project=self.scope.project,
            env=self.scope.env,
        )
        line.setdefault("step", step_var.get())
        line.setdefault("trace_id", trace_var.get())
        line.setdefault("correlation_id", correlation_var.get())
        line.setdefault("flows", flows_var.get())
        text = json.dumps(line, default=str, ensure_ascii=False)
        self.stream.write(text + "\n")
        self.stream.flush()
        stored = json.loads(text)
        stored["ts"] = now
        ident = f"{time.time_ns():020d}-{next(self._seq):06d}"
        stored["log_id"] = ident
        self._pending.append(SetDoc(f"{self.scope.logs()}/{ident}", stored))
        for tail in list(self._tails):
            tail(stored)

    def tail(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Receive every new line until the returned function is called."""
        self._tails.add(listener)
        return lambda: self._tails.discard(listener)

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await self.documents.apply(pending)

    async def run_flusher(self, interval: float = 0.2) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception as exc:  # the log store must never take the runtime down
                self.stream.write(json.dumps({"level": "error", "msg": f"log flush: {exc}"}) + "\n")

    async def query(
        self,
        *,
        trace_id: str | None = None,
        step: str | None = None,
        level: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        await self.flush()
        where = [
            Filter(name, "==", value)
            for name, value in (("trace_id", trace_id), ("step", step), ("level", level))
            if value
        ]
        return await self.documents.list(
            self.scope.logs(),
            where=where,
            order_by="ts",
            descending=True,
            limit=limit,
            cursor=cursor,
        )


class StepLogger:
    """`context.logger`: Motia's `info|warn|error|debug(msg, extra)` over the log book."""

    def __init__(self, book: LogBook, fields: dict[str, Any]) -> None:
        self._book = book
        self._fields = fields

    def _log(self, level: str, msg: Any, extra: Any = None) -> None:
        if extra is not None and not isinstance(extra, dict):
            extra = {"data": extra}
        self._book.log(level, msg, extra, **self._fields)

    def info(self, msg: Any, extra: Any = None) -> None:
        self._log("info", msg, extra)

    def warn(self, msg: Any, extra: Any = None) -> None:
        self._log("warn", msg, extra)

    warning = warn

    def error(self, msg: Any, extra: Any = None) -> None:
        self._log("error", msg, extra)

    def debug(self, msg: Any, extra: Any = None) -> None:
        self._log("debug", msg, extra)


class Metrics:
    """Per-step Prometheus metrics on a registry of this app's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.executions = Counter(
            "cfp_step_executions",
            "Step executions by outcome",
            ["step", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "cfp_step_errors", "Failed step attempts", ["step"], registry=self.registry
        )
        self.latency = Histogram(
            "cfp_step_duration_seconds",
            "Step handler duration",
            ["step"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "cfp_step_in_flight", "Executions running now", ["step"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "cfp_queue_depth",
            "Deliveries waiting, running or dead",
            ["step", "state"],
            registry=self.registry,
        )


class JsonLogFormatter(logging.Formatter):
    """Python `logging` records (uvicorn's, libraries') as the platform's JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "warn", "CRITICAL": "error"}.get(
            record.levelname, record.levelname.lower()
        )
        line = {
            "level": level,
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "msg": record.getMessage(),
            "logger": record.name,
            **PROCESS_IDENTITY,
            "trace_id": trace_var.get(),
            "correlation_id": correlation_var.get(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, as JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "cfp.services.observability.JsonLogFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "watchfiles")
        },
    }
