"""`notify consume`: the long-running loop. One batch: read, decode, route, insert, publish, ack."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import redis.asyncio as aioredis
from prometheus_client import REGISTRY, start_http_server

from consumer import batches, hygiene, metrics
from consumer.batches import BatchResult, Prepared
from consumer.decisions import DecisionLog
from consumer.reloader import RulesWatcher
from consumer.stream import DeadLetter, Entry, EventStream, StreamLost
from consumer.task_publisher import Publisher, make_publisher
from notify import logs, redis_clients
from notify.brokers import is_redis
from notify.outage import OutageGuard
from notify.outbox import OutboxRelay
from notify.redis_clients import AsyncRedis
from notify.settings import Settings
from notify.store import OutcomeStore
from notify.stream_gauges import StreamGauges, sample
from rules.routing import Routed, route
from schemas import DeadLetterReason, Event, EventError
from schemas.decoding import decode_entry

log = logs.get("consumer")
T = TypeVar("T")
# Entries routed between two turns of the event loop (about 2-4 ms of CPU).
_TURN = 64
# Container allocations between young-generation collections (CPython's default is 700).
_GC_YOUNG = 50_000
# Routing errors remembered for the dead letters they may become; cleared when full.
_LAST_ERRORS = 10_000


class Consumer:
    """Owns one process's clients; `handle` is the whole per-batch path."""

    def __init__(
        self,
        settings: Settings,
        stream: EventStream,
        store: OutcomeStore,
        publisher: Publisher,
        rules: RulesWatcher,
        redis_clients: Sequence[AsyncRedis] = (),
        decisions: DecisionLog | None = None,
    ) -> None:
        self.settings = settings
        self.decisions = decisions
        self.stream = stream
        self.store = store
        self.publisher = publisher
        self.rules = rules
        # Every Redis client the consumer uses (the broker may be a second one).
        self.redis_clients = {id(c): c for c in (stream.client, *redis_clients)}.values()
        self.redis_guard = OutageGuard("redis", on_failure=self._drop_idle_redis)
        self.db_guard = OutageGuard("postgres", on_failure=self._expire_db)
        self.stopping = asyncio.Event()
        self._last_errors: dict[str, str] = {}

    async def _drop_idle_redis(self) -> None:
        """Close the pooled Redis connections not in use: after one failed, they are suspect.

        The ones in use fail (or not) by themselves, inside the same outage."""
        for client in self.redis_clients:
            await redis_clients.drop_idle(client)

    async def _expire_db(self) -> None:
        await self.store.expire_connections()

    async def handle(self, entries: list[Entry]) -> BatchResult:
        """Ack an entry only after its rows are committed and its tasks published."""
        return await self.commit(self.prepare(entries))

    def prepare(self, entries: list[Entry]) -> Prepared:
        """The CPU half of a batch: decode, route, render. No I/O."""
        batch = self._start(len(entries))
        self._prepare_into(batch, entries)
        return batch

    async def prepare_in_turns(self, entries: list[Entry]) -> Prepared:
        """`prepare`, giving the event loop a turn every few entries.

        Routing a batch is some 15-30 ms of CPU; done in one go, it held up each round trip
        of the batch being written meanwhile (BEGIN, INSERT, COMMIT, cancel, publish, ack),
        each by up to a whole batch of routing."""
        batch = self._start(len(entries))
        for start in range(0, len(entries), _TURN):
            self._prepare_into(batch, entries[start : start + _TURN])
            await asyncio.sleep(0)
        return batch

    def _start(self, size: int) -> Prepared:
        """A batch to route into, with one clock and one rules version for all of it."""
        ruleset = self.rules.current
        return Prepared(
            started=time.perf_counter(),
            size=size,
            now=datetime.now(UTC),
            ruleset=ruleset,
            cancel_types=ruleset.cancelling_types(),
            stale_after=timedelta(seconds=self.settings.stale_after_seconds),
        )

    def _prepare_into(self, batch: Prepared, entries: list[Entry]) -> None:
        observe_age = metrics.EVENT_AGE.observe
        for entry in entries:
            event = self._admit(batch, entry)
            if event is None:
                continue
            routed = self._route(batch, entry, event)
            if routed is None:
                continue  # left pending for redelivery
            observe_age(max(0.0, (batch.now - event.time).total_seconds()))
            batches.gather(batch, entry, event, routed)

    def _admit(self, batch: Prepared, entry: Entry) -> Event | None:
        """The entry's event, or None when it is acknowledged (gone) or dead-lettered."""
        s = self.settings
        if entry.fields is None:
            batch.acks.append(entry.id)  # deleted while pending: nothing to do
            return None
        if entry.deliveries > s.max_deliveries:
            detail = self._last_errors.pop(entry.id, "no error recorded (consumer stopped)")
            batch.dead.append(
                DeadLetter(
                    entry.id,
                    entry.fields,
                    DeadLetterReason.MAX_DELIVERIES,
                    f"delivered {entry.deliveries} times; last error: {detail}",
                    entry.deliveries,
                )
            )
            return None
        try:
            return decode_entry(entry.id, entry.fields, s.max_event_bytes)
        except EventError as exc:
            batch.dead.append(
                DeadLetter(entry.id, entry.fields, exc.reason, exc.detail, entry.deliveries)
            )
            return None

    def _route(self, batch: Prepared, entry: Entry, event: Event) -> Routed | None:
        """Routed, or None when routing raised: the entry stays pending, its error kept for
        the dead letter it becomes after NOTIFY_MAX_DELIVERIES."""
        s = self.settings
        try:
            routed = route(
                event,
                batch.ruleset,
                now=batch.now,
                default_region=s.default_region,
                stale_after=batch.stale_after,
                default_timezone=s.default_timezone,
                sms_countries=s.sms_countries,
            )
        except Exception as exc:
            if len(self._last_errors) >= _LAST_ERRORS:
                self._last_errors.clear()  # bounded; a lost detail only shortens a dead letter
            self._last_errors[entry.id] = f"{type(exc).__name__}: {exc}"
            log.exception(
                "routing failed; entry left for redelivery",
                extra=logs.fields(event_id=event.id, entry_id=entry.id),
            )
            return None
        if self._last_errors:
            self._last_errors.pop(entry.id, None)  # routed after all: nothing to remember
        return routed

    async def commit(self, batch: Prepared) -> BatchResult:
        """The I/O half, in order: insert, cancel, publish, then acknowledge."""
        result = BatchResult()
        rows, redelivered = batch.rows, frozenset(batch.redelivered)
        parts = self.settings.insert_connections
        inserted = await self.db_guard.call(
            lambda: batches.insert_shared(self.store, rows, redelivered, parts)
        )
        if batch.cancels:
            # While a reminder from an earlier event could still be written, not yet expired.
            delay = batch.ruleset.longest_cancellable_delay().total_seconds()
            keep = self.settings.stale_after_seconds + delay
            cancelled = await self.db_guard.call(
                lambda: self.store.cancel(batch.cancels, keep_seconds=keep)
            )
        else:
            cancelled = 0
        await self.redis_guard.call(lambda: self.publisher.publish(inserted.to_publish))
        await self.redis_guard.call(lambda: self.stream.finish(batch.acks, batch.dead))
        if self.decisions is not None and batch.decisions:
            self.decisions.add(batch.decisions)
        batches.account(result, batch.per_event, inserted, rows, batch.dead, cancelled)
        result.acked = len(batch.acks)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - batch.started)
        metrics.BATCH_SIZE.observe(batch.size)
        return result

    async def run(self) -> None:
        """Own pending entries first, then idle ones from dead consumers, then new ones."""
        s = self.settings
        await self.redis_guard.call(self.stream.ensure_group)
        metrics.STREAM_RESETS.labels(s.stream, s.group)  # exported at 0 from the start
        pending_cursor: str | None = "0"
        # One batch in the queue plus one being written: bounded memory, overlapped I/O.
        writes: asyncio.Queue[Prepared | None] = asyncio.Queue(maxsize=1)
        writer = asyncio.create_task(self._write(writes))
        next_claim = 0.0
        log.info(
            "consumer started",
            extra=logs.fields(
                consumer=self.stream.consumer,
                stream=s.stream,
                group=s.group,
                rules_version=self.rules.current.version,
            ),
        )
        next_reap = 0.0
        while not self.stopping.is_set():
            self.rules.poll()
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + min(max(s.consumer_reap_seconds / 4, 1.0), 60.0)
                await hygiene.tidy(
                    self.stream.client,
                    s.stream,
                    s.group,
                    own=self.stream.consumer,
                    idle_seconds=s.consumer_reap_seconds,
                )
            entries: list[Entry] = []
            if pending_cursor is not None:
                entries = await self._read(
                    functools.partial(self.stream.read_pending_after, pending_cursor, s.batch_size),
                    [],
                )
                pending_cursor = entries[-1].id if entries else None  # also: the group was lost
            elif time.monotonic() >= next_claim:
                next_claim = time.monotonic() + max(0.5, min(s.claim_idle_seconds / 2, 10.0))
                entries, _ = await self._read(
                    lambda: self.stream.claim_idle(s.claim_idle_seconds, s.batch_size),
                    (list[Entry](), 0),
                )
                if self.stream.autoclaim_cursor != "0-0":
                    next_claim = 0.0  # more to claim: keep going next turn
            if not entries and pending_cursor is None:
                entries = await self._read(
                    lambda: self.stream.read(s.batch_size, s.block_ms, own_pending=False), []
                )
                if entries and len(entries) < s.batch_size and s.linger_ms > 0:
                    entries += await self._linger(s.batch_size - len(entries))
            if entries:
                # Route this batch while the writer still waits on Postgres/Redis for the last.
                await writes.put(await self.prepare_in_turns(entries))
        await writes.put(None)
        await writer
        log.info("consumer stopped", extra=logs.fields(consumer=self.stream.consumer))

    async def _linger(self, room: int) -> list[Entry]:
        """A trickle of events would make a batch, a row and a Celery message each: wait a
        few ms for company (Kafka's linger.ms). Full batches never wait."""
        await asyncio.sleep(self.settings.linger_ms / 1000)
        return await self._read(lambda: self.stream.read(room, None, own_pending=False), [])

    async def _read(self, fn: Callable[[], Awaitable[T]], lost: T) -> T:
        """A stream read through outages; if the stream or group vanished, recreate the
        group and return `lost` (nothing read). Entries already in hand are kept."""
        try:
            return await self.redis_guard.call(fn)
        except StreamLost as exc:
            await self._recreate(exc)
            return lost

    async def _recreate(self, exc: StreamLost) -> None:
        """The stream or group vanished: say so loudly, once; count it; recreate; go on."""
        s = self.settings
        metrics.STREAM_RESETS.labels(s.stream, s.group).inc()
        log.error(
            "stream or consumer group lost; recreating the group. Entries that were pending "
            "(read, not acknowledged) are not redelivered, and if the stream itself was "
            "deleted, events not yet read are gone",
            extra=logs.fields(stream=s.stream, group=s.group, error=str(exc)),
        )
        start = await self.redis_guard.call(self.stream.recreate_group)
        log.warning(
            "consumer group recreated",
            extra=logs.fields(stream=s.stream, group=s.group, start_id=start),
        )

    async def _write(self, writes: asyncio.Queue[Prepared | None]) -> None:
        """Commit prepared batches one at a time, in order (cancels follow earlier inserts)."""
        while (batch := await writes.get()) is not None:
            try:
                await self.commit(batch)
            except Exception:  # entries stay pending and are reclaimed later
                log.exception("batch failed; its entries will be redelivered")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=1.0)


def collect_less() -> None:
    """Keep the cyclic garbage collector off the per-event path.

    A batch allocates thousands of short-lived containers, freed by reference counting, yet
    each 700 allocations started a collection, and every so often one that walked everything
    the imports built (Celery, Jinja2, phonenumbers): 7-10 us an event, a quarter of the
    consumer's CPU. Everything alive now is frozen out of collections for good, and young
    collections come every 50,000 allocations; `make bench` shows RSS staying flat.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])


def redis_broker(settings: Settings, client: AsyncRedis) -> aioredis.Redis | None:
    """The broker as a Redis client for the fast publisher; None when it is not Redis."""
    if not is_redis(settings.broker_url):
        return None
    if settings.broker_url == settings.redis_url and isinstance(client, aioredis.Redis):
        return client
    return aioredis.from_url(settings.broker_url, health_check_interval=30)


async def consume(settings: Settings, *, serve_metrics: bool = True) -> int:
    """Build the clients, run until SIGTERM/SIGINT, finish the batch, exit 0.

    The consumer also runs the outcomes relay (notify/outbox.py): every deployment runs a
    consumer, it already holds Redis and Postgres clients on an asyncio loop, and it has CPU
    to spare (one consumer routes ten times what a worker host sends), where a worker's
    sender threads do not.
    """
    rules = RulesWatcher(settings.rules_path, settings.rules_poll_seconds)
    client = redis_clients.async_client(settings, health_check_interval=30)
    broker = redis_broker(settings, client)
    store = await OutageGuard("postgres").call(
        # The batch's insert connections, the cancel after them, the outbox relay, a spare.
        lambda: OutcomeStore.connect(
            settings.database_url,
            min_size=1,
            max_size=max(5, settings.insert_connections + 3),
            statement_cache_size=settings.statement_cache_size,
        )
    )
    stream = EventStream(
        client, settings.stream, settings.group, settings.consumer_name, settings.dlq_stream
    )
    decisions = DecisionLog(store.pool)
    consumer = Consumer(
        settings,
        stream,
        store,
        make_publisher(settings, broker),
        rules,
        redis_clients=[] if broker is None else [broker],
        decisions=decisions,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, consumer.stopping.set)
    metrics.start_at_zero()
    gauges = StreamGauges(settings.stream, settings.group, interval=settings.stream_sample_seconds)
    REGISTRY.register(gauges)
    if serve_metrics and settings.metrics_port:
        start_http_server(settings.metrics_port)
    sampler = asyncio.create_task(sample(client, gauges, consumer.stopping, stream.info))
    collect_less()
    relay = OutboxRelay(store.pool, client, settings.outcomes_stream, settings.outcomes_maxlen)
    relaying = asyncio.create_task(relay.run(consumer.stopping))
    recording = asyncio.create_task(decisions.run(consumer.stopping))
    try:
        await consumer.run()
    finally:
        consumer.stopping.set()
        await sampler
        await relaying
        await recording
        REGISTRY.unregister(gauges)
        await store.close()
        await client.aclose()
        if broker is not None and broker is not client:
            await broker.aclose()
    return 0
