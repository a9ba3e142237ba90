"""The benchmark's plain Kafka echo (bench/echo.py) on the real broker: served by a process of
its own, ready when entered, every record sent after that echoed as it is, and gone once
left."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from bench.echo import echo_process
from streams.adapters.kafka.client import client_options
from streams.settings import Settings
from streams.topics import Topics
from tests.support import produce


async def test_the_echo_process_sends_every_record_back_as_it_is(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    source, target, *_ = Topics.from_settings(settings).events
    sent = [(source, b"u", f"echo-{i}".encode()) for i in range(20)]
    async with echo_process(settings, source, target) as echo:
        assert echo.is_alive()
        await produce(settings, sent)
        consumer = AIOKafkaConsumer(
            target, **client_options(settings), group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            echoed: list[tuple[bytes | None, bytes | None]] = []
            for _ in range(100):
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    echoed += [(r.key, r.value) for r in batch]
                if len(echoed) >= len(sent):
                    break
        finally:
            await consumer.stop()
    assert sorted(echoed) == sorted((key, value) for _, key, value in sent)
    assert not echo.is_alive()  # stopped when left
