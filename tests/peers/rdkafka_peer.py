#!/usr/bin/env python3
"""The librdkafka peer of the Klamm interop tests (through the confluent-kafka package).

Same command-line interface as the Java peer (tests/peers/java), so the Rust harness runs either
the same way:

    produce --brokers B --topic T [--compression none|gzip|snappy|lz4|zstd] [--idempotent]
            [--transaction commit|abort]
            [--acks all|1|0] [--partitioner default|murmur2]
    consume --brokers B --topic T --count N [--timeout-ms MS] [--from-beginning] [--group G]
            [--isolation read_committed|read_uncommitted]
    create-topic --brokers B --topic T [--partitions N]
    group-member --brokers B --topic T --group G [--assignor cooperative-sticky|range|roundrobin]
            [--commit-every N] [--count N] [--timeout-ms MS] [--property key=value]...
    committed --brokers B --topic T --group G
    hang-transaction --brokers B --topic T --transactional-id ID [--transaction-timeout-ms MS]
    txn-produce --brokers B --topic T --count N --per-transaction K [--value-size BYTES]
    copy --brokers B --topic T1 --output T2 --group G --transactional-id ID --count N
            [--commit-every N] [--timeout-ms MS]

`produce` reads one JSON record per stdin line,
    {"key": hex|null, "value": hex|null, "headers": [[name, hex|null], ...],
     "timestamp": ms|null, "partition": p|null}
flushes, and prints {"partition": p, "offset": o} per record in input order. Records without a
partition go where librdkafka's partitioner puts them: `consistent_random` by default,
`murmur2_random` (the Java client's key hash) with --partitioner murmur2.
`consume` assigns every partition of the topic (no group, nothing committed) and prints
    {"partition", "offset", "key", "value", "headers", "timestamp", "timestamp_type"}
per record, until --count records arrived or nothing arrived for --timeout-ms.
With --group, `consume` instead subscribes as a member of group G (classic protocol), commits
the offsets of what it printed before it leaves, and starts where the group's committed offsets
say (or at the beginning / end of each partition when there are none).
`group-member` behaves as Klamm's `group-consume` example (consumer-group/examples), so the
harness follows the three clients in one group the same way: it subscribes to T as a member of G
(classic protocol with partition.assignment.strategy = --assignor unless --property
group.protocol=consumer asks for KIP-848; earliest when nothing is
committed, no auto-commit), prints `assigned <topic-partition,...>` after every assignment
(possibly empty), `revoked <...>` / `lost <...>` when partitions go (only when some do), and
`partition<TAB>offset<TAB>key<TAB>value` per record (UTF-8, lossy; `-` for null), one flushed
line each. It commits the offsets after what it printed every N records (default 1000; a failed
periodic commit is reported on stderr and the member goes on) and, in the rebalance callback,
for partitions before they are revoked. It stops after --count records, when nothing arrived for
--timeout-ms (default 10000), or on SIGTERM/SIGINT; then it commits what it printed, closes
(revoking and leaving the group) and exits 0.
`committed` prints {"partition": p, "offset": o|null} per partition of T: G's committed offsets.
`hang-transaction` leaves a hanging transaction behind: as transactional producer ID (timeout
--transaction-timeout-ms, default 600000) it begins a transaction, writes the records of stdin
(as `produce` reads them), prints {"partition": p, "offset": o} per record once all are written,
and exits without committing or aborting, so the transaction stays open at its coordinator until
the timeout.
Any error ends the process with a message on stderr and a non-zero status.
`txn-produce` and `copy` are the transactional benchmarks' loops (docs/benchmarks.md).
`txn-produce` writes N records with 100-byte values (--value-size) and no key in transactions
of K records (transactional.id random, linger.ms 5) and prints {"records", "seconds"}, timed from
the first begin_transaction to the last commit. `copy` is the loop of Klamm's
`transactional-copy` example: it reads T1 read_committed in group G, writes each record's key
and value to T2 with a `source-offset` header (`partition:offset`), and commits the input offsets
in the same transaction every --commit-every records (default 1000) or when a poll returns
nothing; it stops after N records or when idle for --timeout-ms and prints {"records",
"transactions", "seconds"}, timed from the first record read to the last commit.
"""

import argparse
import os
import json
import signal
import sys
import time
import uuid

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

PROG = "rdkafka-peer"


class PeerError(Exception):
    pass


def unhex(value, what):
    if value is None:
        return None
    if not isinstance(value, str):
        raise PeerError(f"{what}: expected a hex string or null, got {value!r}")
    try:
        return bytes.fromhex(value)
    except ValueError as e:
        raise PeerError(f"{what}: bad hex {value!r}: {e}") from None


def tohex(value):
    return None if value is None else value.hex()


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


def common_config(args):
    config = {"bootstrap.servers": args.brokers, "client.id": "klamm-rdkafka-peer"}
    config.update(environment_properties())
    return config


def environment_properties():
    """Client properties for every client this process makes (security settings, say): one
    key=value per line in KLAMM_PEER_PROPERTIES."""
    props = {}
    for line in os.environ.get("KLAMM_PEER_PROPERTIES", "").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise PeerError(f"KLAMM_PEER_PROPERTIES: {line!r} is not key=value")
        props[key.strip()] = value
    return props


def parse_record(line, line_no):
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise PeerError(f"line {line_no} is not JSON: {e}") from None
    if not isinstance(rec, dict):
        raise PeerError(f"line {line_no} is not a JSON object")
    headers = []
    for h in rec.get("headers") or []:
        if not (isinstance(h, list) and len(h) == 2 and isinstance(h[0], str)):
            raise PeerError(f"line {line_no}: a header must be [name, hex|null]")
        headers.append((h[0], unhex(h[1], f"line {line_no} header {h[0]!r}")))
    return {
        "key": unhex(rec.get("key"), f"line {line_no} key"),
        "value": unhex(rec.get("value"), f"line {line_no} value"),
        "headers": headers,
        "timestamp": rec.get("timestamp"),
        "partition": rec.get("partition"),
    }


def produce(args):
    config = common_config(args)
    config.update(
        {
            "acks": args.acks,
            "compression.type": args.compression,
            "enable.idempotence": args.idempotent,
            "linger.ms": 5,
            "message.timeout.ms": 30000,
        }
    )
    if args.transaction:
        config["transactional.id"] = f"klamm-rdkafka-peer-{uuid.uuid4()}"
        config["enable.idempotence"] = True
        config["transaction.timeout.ms"] = 30000
    if args.partitioner == "murmur2":
        config["partitioner"] = "murmur2_random"
    records = [parse_record(line, n) for n, line in enumerate(sys.stdin, 1) if line.strip()]
    results = [None] * len(records)

    def delivered(index):
        def callback(err, msg):
            results[index] = (err, msg)

        return callback

    producer = Producer(config)
    if args.transaction:
        producer.init_transactions(30)
        producer.begin_transaction()
    for i, rec in enumerate(records):
        kwargs = {"value": rec["value"], "key": rec["key"], "on_delivery": delivered(i)}
        if rec["headers"]:
            kwargs["headers"] = rec["headers"]
        if rec["timestamp"] is not None:
            kwargs["timestamp"] = rec["timestamp"]
        if rec["partition"] is not None:
            kwargs["partition"] = rec["partition"]
        while True:
            try:
                producer.produce(args.topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
    remaining = producer.flush(60)
    if remaining:
        raise PeerError(f"{remaining} records were still undelivered after 60 s")
    if args.transaction == "commit":
        producer.commit_transaction(30)
    elif args.transaction == "abort":
        producer.abort_transaction(30)
    for i, result in enumerate(results):
        if result is None:
            raise PeerError(f"record {i} got no delivery report")
        err, msg = result
        if err is not None:
            raise PeerError(f"record {i} was not delivered: {err}")
        offset = msg.offset()
        line = {"partition": msg.partition(), "offset": -1 if offset is None or offset < 0 else offset}
        if args.transaction:
            line["transaction"] = args.transaction
        emit(line)


def hang_transaction(args):
    config = common_config(args)
    config.update(
        {
            "transactional.id": args.transactional_id,
            "transaction.timeout.ms": args.transaction_timeout_ms,
            "linger.ms": 5,
            "message.timeout.ms": 30000,
        }
    )
    records = [parse_record(line, n) for n, line in enumerate(sys.stdin, 1) if line.strip()]
    producer = Producer(config)
    producer.init_transactions(30)
    producer.begin_transaction()
    results = [None] * len(records)
    for i, rec in enumerate(records):

        def callback(err, msg, i=i):
            results[i] = (err, msg)

        kwargs = {"value": rec["value"], "key": rec["key"], "on_delivery": callback}
        if rec["headers"]:
            kwargs["headers"] = rec["headers"]
        if rec["timestamp"] is not None:
            kwargs["timestamp"] = rec["timestamp"]
        if rec["partition"] is not None:
            kwargs["partition"] = rec["partition"]
        producer.produce(args.topic, **kwargs)
    remaining = producer.flush(60)
    if remaining:
        raise PeerError(f"{remaining} records were still undelivered after 60 s")
    for i, result in enumerate(results):
        if result is None:
            raise PeerError(f"record {i} got no delivery report")
        err, msg = result
        if err is not None:
            raise PeerError(f"record {i} was not delivered: {err}")
        emit({"partition": msg.partition(), "offset": msg.offset()})
    sys.stdout.flush()
    # Leave without closing the producer: closing it could end the transaction, and the
    # point is a transaction nobody ends.
    os._exit(0)


def produce_stream(args):
    """Writes keyed records at a steady rate until --duration-s passes or SIGTERM comes, then
    flushes. Record n of key k has key "k<k>" and value "<k>:<n>". Prints one line per
    delivery report as it arrives: {"key", "seq", "sent_ms", "done_ms", "partition",
    "offset"} or, for a failed record, "error" instead of partition and offset; times are
    milliseconds since the start. Ends with {"end": true, "sent": N, "undelivered": M}."""
    config = common_config(args)
    config.update(
        {
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "lz4",
            "linger.ms": 5,
        }
    )
    config.update(parse_properties(args.property))
    stopping = []

    def on_signal(_signum, _frame):
        stopping.append(True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    start = time.monotonic()

    def now_ms():
        return int((time.monotonic() - start) * 1000)

    def report(key, seq, sent_ms):
        def callback(err, msg):
            line = {"key": key, "seq": seq, "sent_ms": sent_ms, "done_ms": now_ms()}
            if err is not None:
                line["error"] = str(err)
            else:
                line["partition"] = msg.partition()
                line["offset"] = msg.offset()
            emit(line)
            sys.stdout.flush()

        return callback

    producer = Producer(config)
    seqs = [0] * args.keys
    interval = 1.0 / args.rate
    sent = 0
    next_at = start
    while not stopping and time.monotonic() - start < args.duration_s:
        key = sent % args.keys
        seq = seqs[key]
        seqs[key] += 1
        sent_ms = now_ms()
        while True:
            try:
                producer.produce(
                    args.topic,
                    key=f"k{key}".encode(),
                    value=f"{key}:{seq}".encode(),
                    on_delivery=report(key, seq, sent_ms),
                )
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        next_at += interval
        while True:
            left = next_at - time.monotonic()
            producer.poll(max(0.0, min(left, 0.05)))
            if left <= 0 or stopping:
                break
    undelivered = producer.flush(args.flush_s)
    emit({"end": True, "sent": sent, "undelivered": undelivered})
    sys.stdout.flush()


def partitions_of(consumer, topic, wait_s):
    deadline = time.monotonic() + wait_s
    while True:
        md = consumer.list_topics(topic, timeout=max(1.0, deadline - time.monotonic()))
        t = md.topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            return sorted(t.partitions)
        if time.monotonic() > deadline:
            why = t.error if t is not None else "not in metadata"
            raise PeerError(f"topic {topic} has no partitions ({why})")
        time.sleep(0.2)


TIMESTAMP_TYPES = {TIMESTAMP_CREATE_TIME: "CreateTime", TIMESTAMP_LOG_APPEND_TIME: "LogAppendTime"}


def consume(args):
    config = common_config(args)
    config.update(
        {
            # librdkafka wants a group id for a consumer even when it only assigns; without
            # --group nothing joins or commits under this one.
            "group.id": args.group or "klamm-rdkafka-peer-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "allow.auto.create.topics": False,
            "enable.partition.eof": False,
            "isolation.level": args.isolation,
        }
    )
    if args.group:
        config["auto.offset.reset"] = "earliest" if args.from_beginning else "latest"
    consumer = Consumer(config)
    try:
        partitions = partitions_of(consumer, args.topic, max(args.timeout_ms / 1000, 10))
        if args.group:
            consumer.subscribe([args.topic])
        elif args.from_beginning:
            starts = {p: OFFSET_BEGINNING for p in partitions}
        else:
            # Resolve the ends now, so "from the end" means the end at start-up, not whenever the
            # first fetch happens.
            starts = {p: consumer.get_watermark_offsets(TopicPartition(args.topic, p), 10)[1] for p in partitions}
        if not args.group:
            consumer.assign([TopicPartition(args.topic, p, starts[p]) for p in partitions])
        emitted = 0
        last_progress = time.monotonic()
        while emitted < args.count:
            idle_ms = (time.monotonic() - last_progress) * 1000
            if idle_ms >= args.timeout_ms:
                print(
                    f"{PROG}: nothing arrived for {args.timeout_ms} ms; got {emitted} of {args.count} records",
                    file=sys.stderr,
                )
                break
            msg = consumer.poll(min(0.2, (args.timeout_ms - idle_ms) / 1000))
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            ts_type, ts = msg.timestamp()
            emit(
                {
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "key": tohex(msg.key()),
                    "value": tohex(msg.value()),
                    "headers": [[k, tohex(v)] for k, v in (msg.headers() or [])],
                    "timestamp": ts,
                    "timestamp_type": TIMESTAMP_TYPES.get(ts_type, "NoTimestampType"),
                }
            )
            emitted += 1
            last_progress = time.monotonic()
            if args.group:
                consumer.store_offsets(msg)
        if args.group and emitted:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def text(value):
    return "-" if value is None else value.decode("utf-8", errors="replace")


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def tp_list(partitions):
    return ",".join(f"{tp.topic}-{tp.partition}" for tp in partitions)


def parse_properties(pairs):
    out = {}
    for kv in pairs:
        key, sep, value = kv.partition("=")
        if not sep:
            raise PeerError(f"--property takes key=value, not {kv!r}")
        out[key.strip()] = value
    return out


def group_member(args):
    cooperative = args.assignor == "cooperative-sticky"
    config = common_config(args)
    config.update(
        {
            "group.id": args.group,
            "partition.assignment.strategy": args.assignor,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "allow.auto.create.topics": False,
            "enable.partition.eof": False,
        }
    )
    config.update(parse_properties(args.property))
    if str(config.get("group.protocol", "")).strip().lower() == "consumer":
        # The broker assigns in the consumer protocol (KIP-848): --assignor is for classic.
        config.pop("partition.assignment.strategy", None)
    consumer = Consumer(config)
    # Per (topic, partition) owned now: the offset after the last record printed.
    consumed = {}
    stopping = []

    def on_signal(_signum, _frame):
        stopping.append(True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def commit(keys, why):
        offsets = [TopicPartition(t, p, consumed[(t, p)]) for (t, p) in keys if (t, p) in consumed]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            print(f"{PROG}: commit {why} failed: {e}", file=sys.stderr, flush=True)

    def on_assign(c, partitions):
        if cooperative:
            c.incremental_assign(partitions)
        else:
            c.assign(partitions)
        say(f"assigned {tp_list(partitions)}")

    def on_revoke(c, partitions):
        keys = [(tp.topic, tp.partition) for tp in partitions]
        commit(keys, "before revocation")
        for k in keys:
            consumed.pop(k, None)
        if cooperative:
            c.incremental_unassign(partitions)
        else:
            c.unassign()
        if partitions:
            say(f"revoked {tp_list(partitions)}")

    def on_lost(c, partitions):
        for tp in partitions:
            consumed.pop((tp.topic, tp.partition), None)
        if cooperative:
            c.incremental_unassign(partitions)
        else:
            c.unassign()
        if partitions:
            say(f"lost {tp_list(partitions)}")

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    printed = 0
    since_commit = 0
    last_progress = time.monotonic()
    try:
        while not stopping and (args.count is None or printed < args.count):
            idle_ms = (time.monotonic() - last_progress) * 1000
            if idle_ms >= args.timeout_ms:
                break
            msg = consumer.poll(min(0.2, (args.timeout_ms - idle_ms) / 1000))
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            say(f"{msg.partition()}\t{msg.offset()}\t{text(msg.key())}\t{text(msg.value())}")
            consumed[(msg.topic(), msg.partition())] = msg.offset() + 1
            printed += 1
            since_commit += 1
            last_progress = time.monotonic()
            if since_commit >= args.commit_every:
                commit(list(consumed), "of printed records")
                since_commit = 0
        commit(list(consumed), "before closing")
    finally:
        consumer.close()


def committed(args):
    config = common_config(args)
    config.update({"group.id": args.group, "enable.auto.commit": False})
    consumer = Consumer(config)
    try:
        partitions = partitions_of(consumer, args.topic, 10)
        got = consumer.committed([TopicPartition(args.topic, p) for p in partitions], timeout=30)
        for tp in sorted(got, key=lambda tp: tp.partition):
            if tp.error is not None:
                raise KafkaException(tp.error)
            # librdkafka says OFFSET_INVALID (-1001) where nothing is committed.
            offset = None if tp.offset < 0 else tp.offset
            emit({"partition": tp.partition, "offset": offset})
    finally:
        consumer.close()


def create_topic(args):
    admin = AdminClient(common_config(args))
    futures = admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)])
    for future in futures.values():
        future.result(30)


def txn_produce(args):
    config = common_config(args)
    config.update(
        {
            "transactional.id": f"klamm-rdkafka-bench-{uuid.uuid4()}",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
        }
    )
    producer = Producer(config)
    producer.init_transactions(60)
    value = b"x" * args.value_size
    start = time.monotonic()
    sent = 0
    while sent < args.count:
        producer.begin_transaction()
        for _ in range(min(args.per_transaction, args.count - sent)):
            while True:
                try:
                    producer.produce(args.topic, value=value)
                    break
                except BufferError:
                    producer.poll(0.001)
            sent += 1
            if sent % 1024 == 0:
                producer.poll(0)
        producer.commit_transaction(60)
    emit({"records": sent, "seconds": time.monotonic() - start})


def copy(args):
    consumer_config = common_config(args)
    consumer_config.update(
        {
            "group.id": args.group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer_config = common_config(args)
    producer_config.update({"transactional.id": args.transactional_id, "linger.ms": 5})
    producer = Producer(producer_config)
    producer.init_transactions(60)
    consumer = Consumer(consumer_config)
    consumer.subscribe([args.topic])
    state = {"open": False, "pending": 0, "offsets": {}, "copied": 0, "transactions": 0}

    def commit():
        if not state["open"]:
            return
        offsets = [TopicPartition(args.topic, p, o) for p, o in state["offsets"].items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 60)
        producer.commit_transaction(60)
        state.update(open=False, offsets={}, copied=state["copied"] + state["pending"], pending=0)
        state["transactions"] += 1

    first = None
    idle_since = time.monotonic()
    while state["copied"] + state["pending"] < args.count:
        if time.monotonic() - idle_since > args.timeout_ms / 1000:
            break
        msgs = consumer.consume(500, 0.2)
        if not msgs:
            commit()
            continue
        idle_since = time.monotonic()
        for msg in msgs:
            if msg.error() is not None:
                continue
            if state["copied"] + state["pending"] >= args.count:
                break
            if first is None:
                first = time.monotonic()
            if not state["open"]:
                producer.begin_transaction()
                state["open"] = True
            headers = [("source-offset", f"{msg.partition()}:{msg.offset()}".encode())]
            while True:
                try:
                    producer.produce(args.output, key=msg.key(), value=msg.value(), headers=headers)
                    break
                except BufferError:
                    producer.poll(0.001)
            state["offsets"][msg.partition()] = msg.offset() + 1
            state["pending"] += 1
            if state["pending"] % 1024 == 0:
                producer.poll(0)
            if state["pending"] >= args.commit_every:
                commit()
    commit()
    seconds = time.monotonic() - first if first is not None else 0.0
    consumer.close()
    emit({"records": state["copied"], "transactions": state["transactions"], "seconds": seconds})


def main():
    parser = argparse.ArgumentParser(prog=PROG)
    commands = parser.add_subparsers(dest="command", required=True)

    def base(name):
        p = commands.add_parser(name)
        p.add_argument("--brokers", required=True)
        p.add_argument("--topic", required=True)
        return p

    p = base("produce")
    p.add_argument("--compression", choices=["none", "gzip", "snappy", "lz4", "zstd"], default="none")
    p.add_argument("--idempotent", action="store_true")
    p.add_argument("--acks", choices=["all", "1", "0"], default="all")
    p.add_argument("--partitioner", choices=["default", "murmur2"], default="default")
    p.add_argument("--transaction", choices=["commit", "abort"])
    p = base("produce-stream")
    p.add_argument("--keys", type=int, default=64)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--duration-s", type=float, required=True)
    p.add_argument("--flush-s", type=float, default=180.0)
    p.add_argument("--property", action="append", default=[])
    p = base("consume")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout-ms", type=int, default=10000)
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--group")
    p.add_argument("--isolation", choices=["read_committed", "read_uncommitted"], default="read_committed")
    p = base("create-topic")
    p.add_argument("--partitions", type=int, default=1)
    p = base("group-member")
    p.add_argument("--group", required=True)
    p.add_argument(
        "--assignor", choices=["cooperative-sticky", "range", "roundrobin"], default="cooperative-sticky"
    )
    p.add_argument("--commit-every", type=lambda v: max(1, int(v)), default=1000)
    p.add_argument("--count", type=int)
    p.add_argument("--timeout-ms", type=int, default=10000)
    p.add_argument("--property", action="append", default=[])
    p = base("committed")
    p.add_argument("--group", required=True)
    p = base("hang-transaction")
    p.add_argument("--transactional-id", required=True)
    p.add_argument("--transaction-timeout-ms", type=int, default=600000)
    p = base("txn-produce")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--per-transaction", type=lambda v: max(1, int(v)), required=True)
    p.add_argument("--value-size", type=int, default=100)
    p = base("copy")
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--transactional-id", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--commit-every", type=lambda v: max(1, int(v)), default=1000)
    p.add_argument("--timeout-ms", type=int, default=10000)

    args = parser.parse_args()
    try:
        commands = {
            "produce": produce,
            "produce-stream": produce_stream,
            "consume": consume,
            "create-topic": create_topic,
            "group-member": group_member,
            "committed": committed,
            "hang-transaction": hang_transaction,
            "txn-produce": txn_produce,
            "copy": copy,
        }
        commands[args.command](args)
    except (PeerError, KafkaException) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
