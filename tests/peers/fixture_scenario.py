#!/usr/bin/env python3
"""The librdkafka fixture scenario: one short session that makes librdkafka (through the
confluent-kafka package) send every request the Klamm fixtures cover.

    fixture_scenario.py --brokers B --topic T --group G [--compression zstd] [--records 40]

In order: an admin client creates T (CreateTopics); an idempotent producer with compression
writes --records records to it (InitProducerId, Produce); a consumer in group G subscribes and
reads them (FindCoordinator, JoinGroup, SyncGroup, Fetch), commits synchronously
(OffsetCommit), reads its committed offsets (OffsetFetch), looks offsets up by timestamp and
the partitions' watermarks (ListOffsets), polls on for longer than its heartbeat interval
(Heartbeat), and closes (LeaveGroup). Metadata and ApiVersions come along the way.

The Java twin is tests/peers/java/.../FixtureScenario.java. Prints one JSON summary line on
stdout; any error ends the process with a message on stderr and a non-zero status.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PROG = "rdkafka-fixture-scenario"
PARTITIONS = 2
# Old, fixed timestamps: the records are the same in every recording.
BASE_TS = 1_600_000_000_000
HEARTBEAT_MS = 100


class ScenarioError(Exception):
    pass


def common(args):
    return {"bootstrap.servers": args.brokers, "client.id": "klamm-fixture-scenario"}


def records(count):
    """Keys, values (one null, some of a few hundred bytes) and headers (one null value)."""
    out = []
    for i in range(count):
        key = None if i == 3 else f"key-{i}".encode()
        value = None if i == 5 else (f"value-{i} " * (1 + (i % 4) * 20)).encode()
        headers = [("index", str(i).encode())]
        if i % 3 == 0:
            headers.append(("null-value", None))
        out.append((i % PARTITIONS, key, value, headers, BASE_TS + 10 * i))
    return out


def create_topic(args):
    admin = AdminClient(common(args))
    futures = admin.create_topics([NewTopic(args.topic, num_partitions=PARTITIONS, replication_factor=1)])
    for future in futures.values():
        future.result(30)


def produce(args, recs):
    config = common(args)
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": args.compression,
            "linger.ms": 20,
            "message.timeout.ms": 30000,
        }
    )
    producer = Producer(config)
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    for partition, key, value, headers, ts in recs:
        producer.produce(
            args.topic, key=key, value=value, headers=headers, timestamp=ts, partition=partition, on_delivery=delivered
        )
    if producer.flush(30):
        raise ScenarioError("records still undelivered after 30 s")
    if errors:
        raise ScenarioError(f"delivery failed: {errors[0]}")


def consume(args, count):
    config = common(args)
    config.update(
        {
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": HEARTBEAT_MS,
        }
    )
    consumer = Consumer(config)
    consumed = 0
    try:
        consumer.subscribe([args.topic])
        deadline = time.monotonic() + 60
        while consumed < count:
            if time.monotonic() > deadline:
                raise ScenarioError(f"consumed {consumed} of {count} records in 60 s")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            consumed += 1

        committed = consumer.commit(asynchronous=False)
        partitions = [TopicPartition(args.topic, p) for p in range(PARTITIONS)]
        fetched = consumer.committed(partitions, timeout=10)
        if sorted(tp.offset for tp in fetched) != sorted(tp.offset for tp in committed):
            raise ScenarioError(f"committed {committed} but read back {fetched}")

        # The first records at or after BASE_TS + 100: records 10 and 11, offset 5 of each partition.
        by_time = consumer.offsets_for_times(
            [TopicPartition(args.topic, p, BASE_TS + 100) for p in range(PARTITIONS)], timeout=10
        )
        watermarks = [consumer.get_watermark_offsets(tp, timeout=10, cached=False) for tp in partitions]

        # Several heartbeat intervals without a rebalance.
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error():
                raise KafkaException(msg.error())
    finally:
        consumer.close()
    return {
        "consumed": consumed,
        "committed": [tp.offset for tp in committed],
        "offsets_for_times": [tp.offset for tp in by_time],
        "watermarks": watermarks,
    }


def main():
    parser = argparse.ArgumentParser(prog=PROG)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--compression", choices=["none", "gzip", "snappy", "lz4", "zstd"], default="zstd")
    parser.add_argument("--records", type=int, default=40)
    args = parser.parse_args()
    try:
        create_topic(args)
        recs = records(args.records)
        produce(args, recs)
        summary = consume(args, len(recs))
    except (ScenarioError, KafkaException) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(summary, separators=(",", ":")))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
