"""The in-process cron scheduler: sleeps until the next tick of any schedule and fires it.

Ticks missed while the process was down are not backfilled: it starts from "now"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from cfp.domain.cron import parse_cron
from cfp.ports import Schedule, TickHandler


class LocalScheduler:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    async def run(self, schedules: Sequence[Schedule], fire: TickHandler) -> None:
        specs = [(s, parse_cron(s.cron)) for s in schedules]
        if not specs:
            return
        now = self.clock()
        due = {s.step: spec.next_after(now) for s, spec in specs}
        while True:
            at = min(due.values())
            delay = at - self.clock()
            if delay > 0:
                await asyncio.sleep(min(delay, 60.0))
                continue
            for schedule, spec in specs:
                if due[schedule.step] <= at:
                    await fire(schedule, due[schedule.step])
                    due[schedule.step] = spec.next_after(max(due[schedule.step], self.clock()))
