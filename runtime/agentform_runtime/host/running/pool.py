"""The workers of one deployed version.

A pool starts workers on demand up to `max_instances`, keeps `min_instances` warm, stops the
ones idle past the idle timeout, and when drained (after a blue-green switch) stops once its
last request has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from agentform_runtime.errors import AgentformError
from agentform_runtime.host.running.runtime_api import Invocation, Outcome, RuntimeApi
from agentform_runtime.host.running.worker import Worker, WorkerInitError, WorkerSpec, Zygote
from agentform_runtime.specs import ScalingSpec

log = logging.getLogger("agentform.host")


def throttled(max_instances: int) -> AgentformError:
    return AgentformError(
        429,
        "Throttled",
        f"all {max_instances} instances are busy and none freed up in time; retry later",
    )


class WorkerPool:
    """The workers of one deployed version."""

    def __init__(
        self, spec: WorkerSpec, scaling: ScalingSpec, runtime_api: RuntimeApi, zygote: Zygote
    ) -> None:
        self.spec = spec
        self.scaling = scaling
        self._api = runtime_api
        self._zygote = zygote
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._starting = 0
        self._changed = asyncio.Condition()
        self.in_flight = 0
        self.draining = False
        self._failed_starts = 0
        self._retry_at = 0.0

    @property
    def size(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    def workers(self) -> list[Worker]:
        return [*self._idle, *self._busy]

    async def start_worker(self) -> Worker:
        """Start one more worker (counted against max_instances while it starts)."""
        self._starting += 1
        return await self._spawn()

    async def _spawn(self) -> Worker:
        """Start a worker whose slot the caller reserved in `_starting`."""
        try:
            worker = Worker(self.spec, self._api, self._zygote)
            await worker.start()
            return worker
        except OSError as exc:
            raise WorkerInitError(f"cannot start a worker: {exc}") from exc
        finally:
            async with self._changed:
                self._starting -= 1
                self._changed.notify_all()

    async def warm(self, worker: Worker) -> None:
        """Add a started worker to the idle set (or stop it, if the pool is going away)."""
        if self.draining:
            await worker.stop()
            return
        async with self._changed:
            self._idle.append(worker)
            self._changed.notify_all()

    async def _acquire(self) -> Worker:
        deadline = time.monotonic() + self.spec.timeout_s
        async with self._changed:
            while True:
                while self._idle:
                    worker = self._idle.pop()  # the most recently used one: warmest
                    if not worker.stopped:
                        self._busy.add(worker)
                        return worker
                if self.size < self.scaling.max_instances:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise throttled(self.scaling.max_instances)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
            self._starting += 1
        try:
            worker = await self._spawn()
        except WorkerInitError as exc:
            raise AgentformError(
                502, "InitError", f"a new worker could not load the handler: {exc.text}"
            ) from None
        self._busy.add(worker)
        return worker

    async def _release(self, worker: Worker) -> None:
        async with self._changed:
            self._busy.discard(worker)
            if not worker.stopped:
                self._idle.append(worker)
            self._changed.notify_all()

    async def invoke(self, invocation: Invocation) -> Outcome:
        self.in_flight += 1
        try:
            worker = await self._acquire()
            try:
                return await worker.invoke(invocation)
            finally:
                await self._release(worker)
        finally:
            self.in_flight -= 1
            if self.draining and self.in_flight == 0:
                await self.stop()

    async def enforce_memory(self) -> None:
        for worker in list(self._busy):
            await worker.enforce_memory()

    async def reap_idle(self, now: float) -> None:
        """Stop workers idle past the idle timeout, keeping min_instances."""
        async with self._changed:
            keep = self.scaling.min_instances
            expired = [w for w in self._idle if now - w.last_used >= self.scaling.idle_timeout_s]
            surplus = max(0, len(self._idle) + len(self._busy) - keep)
            victims = sorted(expired, key=lambda w: w.last_used)[:surplus]
            for worker in victims:
                self._idle.remove(worker)
        for worker in victims:
            log.info("worker %s (pid %s) idle; stopping", worker.id, worker.pid)
            await worker.stop()

    async def ensure_min(self) -> None:
        """Bring the pool up to min_instances; after a failed start, wait before retrying
        (doubling up to a minute) so a broken version does not spin."""
        if time.monotonic() < self._retry_at:
            return
        try:
            while not self.draining and self.size < self.scaling.min_instances:
                await self.warm(await self.start_worker())
        except WorkerInitError as exc:
            self._failed_starts += 1
            delay = min(60.0, 0.5 * 2**self._failed_starts)
            self._retry_at = time.monotonic() + delay
            log.warning("cannot keep min_instances warm (retry in %.0fs): %s", delay, exc.text)
        else:
            self._failed_starts = 0

    async def drain(self) -> None:
        """Take no new requests; stop once the in-flight ones are done."""
        self.draining = True
        if self.in_flight == 0:
            await self.stop()

    async def stop(self) -> None:
        async with self._changed:
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._changed.notify_all()
        await asyncio.gather(*(w.stop() for w in workers))
