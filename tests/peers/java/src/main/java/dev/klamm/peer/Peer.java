package dev.klamm.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.consumer.RoundRobinAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java peer of the Klamm interop tests: Apache Kafka's own client driven from the command
 * line. Its interface is the one tests/peers/rdkafka_peer.py implements, so the Rust harness can
 * run either the same way:
 *
 * <pre>
 * produce --brokers B --topic T [--compression none|gzip|snappy|lz4|zstd] [--idempotent] [--acks all|1|0]
 *         [--partitioner default|murmur2] [--transaction commit|abort]
 * consume --brokers B --topic T --count N [--timeout-ms MS] [--from-beginning]
 *         [--isolation read_committed|read_uncommitted]
 * create-topic --brokers B --topic T [--partitions N]
 * group-member --brokers B --topic T --group G [--assignor cooperative-sticky|range|roundrobin]
 *         [--commit-every N] [--count N] [--timeout-ms MS] [--property key=value]...
 * committed --brokers B --topic T --group G
 * txn-produce --brokers B --topic T --count N --per-transaction K [--value-size BYTES]
 * copy --brokers B --topic T1 --output T2 --group G --transactional-id ID --count N
 *         [--commit-every N] [--timeout-ms MS]
 * </pre>
 *
 * Records travel as JSON lines with keys, values and header values in lowercase hex (null stays
 * null). See docs/testing.md for the exact shapes.
 *
 * <p>With {@code --transaction}, every record goes into one transaction of a transactional
 * producer (idempotent, acks=all), which is then committed or aborted; deliveries are printed
 * either way, since aborted records still occupy offsets.
 *
 * <p>{@code group-member} behaves as Klamm's {@code group-consume} example, so that the harness
 * follows members of either client in one group alike: a classic-protocol member of G subscribed
 * to T (partition.assignment.strategy from --assignor with the classic protocol, the default;
 * --property group.protocol=consumer joins with KIP-848 instead; earliest when nothing is committed, no
 * auto-commit; --property sets any consumer property) printing {@code assigned <topic-partition,...>}
 * after every assignment, {@code revoked <...>} / {@code lost <...>} when partitions go (only when
 * some do), and {@code partition<TAB>offset<TAB>key<TAB>value} per record (UTF-8; {@code -} for
 * null), each line flushed. It commits the offsets after what it printed every N records (default
 * 1000; a failed periodic commit is reported on stderr and the member goes on) and, in the
 * rebalance listener, for partitions before they are revoked. It stops after --count records,
 * when nothing arrived for --timeout-ms (default 10000), or on SIGTERM/SIGINT; then it commits
 * what it printed, closes (revoking and leaving) and exits 0.
 *
 * <p>{@code committed} prints {@code {"partition":p,"offset":o|null}} per partition of T: the
 * offsets group G has committed.
 *
 * <p>{@code txn-produce} and {@code copy} are the transactional benchmarks' loops, as in the
 * librdkafka peer: N keyless records of --value-size bytes (default 100) in transactions of K
 * records (linger.ms 5), printing {@code {"records","seconds"}} from the first
 * beginTransaction to the last commit; and the loop of Klamm's {@code transactional-copy}
 * example (read_committed, key and value to T2 with a {@code source-offset} header, input
 * offsets committed in the transaction every --commit-every records or when a poll returns
 * nothing), printing {@code {"records","transactions","seconds"}} from the first record read
 * to the last commit.
 */
public final class Peer {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HexFormat HEX = HexFormat.of();

    private Peer() {}

    public static void main(String[] argv) {
        int status;
        try {
            status = run(argv);
        } catch (UsageException e) {
            System.err.println("java-peer: " + e.getMessage());
            System.err.println(
                    "usage: produce|consume|create-topic|group-member|committed --brokers B --topic T"
                            + " [options] (see docs/testing.md)");
            status = 2;
        } catch (Throwable e) {
            System.err.println("java-peer: error: " + e);
            Throwable cause = e.getCause();
            while (cause != null) {
                System.err.println("  caused by: " + cause);
                cause = cause.getCause();
            }
            status = 1;
        }
        System.out.flush();
        // The client libraries leave non-daemon threads behind on some error paths.
        System.exit(status);
    }

    private static int run(String[] argv) throws Exception {
        if (argv.length == 0) {
            throw new UsageException("missing command");
        }
        Args args = Args.parse(argv);
        switch (argv[0]) {
            case "produce":
                return produce(args);
            case "consume":
                return consume(args);
            case "create-topic":
                return createTopic(args);
            case "group-member":
                return groupMember(args);
            case "committed":
                return committed(args);
            case "txn-produce":
                return txnProduce(args);
            case "copy":
                return copy(args);
            default:
                throw new UsageException("unknown command " + argv[0]);
        }
    }

    private static int produce(Args args) throws Exception {
        String acks = args.get("acks", "all");
        if (!List.of("all", "1", "0").contains(acks)) {
            throw new UsageException("--acks must be all, 1 or 0");
        }
        String transaction = args.get("transaction", null);
        if (transaction != null && !List.of("commit", "abort").contains(transaction)) {
            throw new UsageException("--transaction must be commit or abort");
        }
        if (transaction != null && !acks.equals("all")) {
            throw new UsageException("--transaction needs --acks all");
        }
        String compression = args.get("compression", "none");
        if (!List.of("none", "gzip", "snappy", "lz4", "zstd").contains(compression)) {
            throw new UsageException("--compression must be none, gzip, snappy, lz4 or zstd");
        }
        String partitioner = args.get("partitioner", "default");
        if (!List.of("default", "murmur2").contains(partitioner)) {
            throw new UsageException("--partitioner must be default or murmur2");
        }
        Properties props = common(args);
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        props.put("acks", acks);
        props.put("compression.type", compression);
        // The Java client turns idempotence on by default; the peers agree on off unless asked.
        props.put("enable.idempotence", Boolean.toString(args.flag("idempotent") || transaction != null));
        if (transaction != null) {
            props.put("transactional.id", "klamm-java-peer-" + java.util.UUID.randomUUID());
            props.put("transaction.timeout.ms", "30000");
        }
        props.put("linger.ms", "5");
        props.put("max.block.ms", "30000");
        props.put("request.timeout.ms", "15000");
        props.put("delivery.timeout.ms", "30000");
        if (partitioner.equals("murmur2")) {
            // The built-in partitioner hashes keys with murmur2 unless told to ignore them; say
            // so explicitly rather than rely on the default.
            props.put("partitioner.ignore.keys", "false");
        }

        String topic = args.require("topic");
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        int lineNo = 0;
        while ((line = in.readLine()) != null) {
            lineNo++;
            if (line.isBlank()) {
                continue;
            }
            records.add(parseRecord(topic, line, lineNo));
        }

        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            if (transaction != null) {
                producer.initTransactions();
                producer.beginTransaction();
            }
            for (ProducerRecord<byte[], byte[]> record : records) {
                sent.add(producer.send(record));
            }
            producer.flush();
            if ("commit".equals(transaction)) {
                producer.commitTransaction();
            } else if ("abort".equals(transaction)) {
                producer.abortTransaction();
            }
        }
        PrintStream out = System.out;
        for (Future<RecordMetadata> f : sent) {
            RecordMetadata md = f.get();
            ObjectNode o = JSON.createObjectNode();
            o.put("partition", md.partition());
            o.put("offset", md.hasOffset() ? md.offset() : -1L);
            if (transaction != null) {
                o.put("transaction", transaction);
            }
            out.println(JSON.writeValueAsString(o));
        }
        return 0;
    }

    private static ProducerRecord<byte[], byte[]> parseRecord(String topic, String line, int lineNo)
            throws Exception {
        JsonNode o;
        try {
            o = JSON.readTree(line);
        } catch (Exception e) {
            throw new UsageException("line " + lineNo + " is not JSON: " + e.getMessage());
        }
        if (!o.isObject()) {
            throw new UsageException("line " + lineNo + " is not a JSON object");
        }
        List<Header> headers = new ArrayList<>();
        JsonNode hs = o.path("headers");
        if (hs.isArray()) {
            for (JsonNode h : hs) {
                if (!h.isArray() || h.size() != 2 || !h.get(0).isTextual()) {
                    throw new UsageException("line " + lineNo + ": a header must be [name, hex|null]");
                }
                headers.add(new RecordHeader(h.get(0).asText(), hex(h.get(1))));
            }
        }
        Integer partition = o.path("partition").isIntegralNumber() ? o.get("partition").intValue() : null;
        Long timestamp = o.path("timestamp").isIntegralNumber() ? o.get("timestamp").longValue() : null;
        return new ProducerRecord<>(topic, partition, timestamp, hex(o.get("key")), hex(o.get("value")), headers);
    }

    private static int consume(Args args) throws Exception {
        String topic = args.require("topic");
        long count = Long.parseLong(args.require("count"));
        long idleMs = Long.parseLong(args.get("timeout-ms", "10000"));
        Properties props = common(args);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("enable.auto.commit", "false");
        props.put("allow.auto.create.topics", "false");
        String isolation = args.get("isolation", "read_uncommitted");
        if (!List.of("read_committed", "read_uncommitted").contains(isolation)) {
            throw new UsageException("--isolation must be read_committed or read_uncommitted");
        }
        props.put("isolation.level", isolation);

        long emitted = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = partitionsOf(consumer, topic, Math.max(idleMs, 10000));
            consumer.assign(partitions);
            if (args.flag("from-beginning")) {
                consumer.seekToBeginning(partitions);
            } else {
                consumer.seekToEnd(partitions);
            }
            // Resolve the positions now, so "from the end" means the end at start-up.
            for (TopicPartition tp : partitions) {
                consumer.position(tp);
            }
            long lastProgress = System.nanoTime();
            while (emitted < count) {
                long idle = (System.nanoTime() - lastProgress) / 1_000_000;
                if (idle >= idleMs) {
                    System.err.println("java-peer: nothing arrived for " + idleMs + " ms; got " + emitted
                            + " of " + count + " records");
                    break;
                }
                var batch = consumer.poll(Duration.ofMillis(Math.min(200, idleMs - idle)));
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    if (emitted == count) {
                        break;
                    }
                    System.out.println(JSON.writeValueAsString(recordJson(r)));
                    emitted++;
                    lastProgress = System.nanoTime();
                }
            }
        }
        return 0;
    }

    private static List<TopicPartition> partitionsOf(KafkaConsumer<?, ?> consumer, String topic, long waitMs)
            throws InterruptedException {
        long deadline = System.nanoTime() + waitMs * 1_000_000;
        while (true) {
            List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofMillis(waitMs));
            if (infos != null && !infos.isEmpty()) {
                List<TopicPartition> out = new ArrayList<>();
                for (PartitionInfo p : infos) {
                    out.add(new TopicPartition(topic, p.partition()));
                }
                return out;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("topic " + topic + " has no partitions (does it exist?)");
            }
            Thread.sleep(200);
        }
    }

    private static ObjectNode recordJson(ConsumerRecord<byte[], byte[]> r) {
        ObjectNode o = JSON.createObjectNode();
        o.put("partition", r.partition());
        o.put("offset", r.offset());
        o.put("key", hex(r.key()));
        o.put("value", hex(r.value()));
        ArrayNode headers = o.putArray("headers");
        for (Header h : r.headers()) {
            ArrayNode pair = headers.addArray();
            pair.add(h.key());
            pair.add(hex(h.value()));
        }
        o.put("timestamp", r.timestamp());
        o.put("timestamp_type", r.timestampType().name);
        return o;
    }

    private static final Map<String, String> ASSIGNORS = Map.of(
            "cooperative-sticky", CooperativeStickyAssignor.class.getName(),
            "range", RangeAssignor.class.getName(),
            "roundrobin", RoundRobinAssignor.class.getName());

    private static int groupMember(Args args) throws Exception {
        String topic = args.require("topic");
        String assignor = args.get("assignor", "cooperative-sticky");
        if (!ASSIGNORS.containsKey(assignor)) {
            throw new UsageException("--assignor must be cooperative-sticky, range or roundrobin");
        }
        long commitEvery = Math.max(1, Long.parseLong(args.get("commit-every", "1000")));
        String countArg = args.get("count", null);
        long count = countArg == null ? Long.MAX_VALUE : Long.parseLong(countArg);
        long idleMs = Long.parseLong(args.get("timeout-ms", "10000"));
        Properties props = common(args);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("group.id", args.require("group"));
        props.put("group.protocol", "classic");
        props.put("partition.assignment.strategy", ASSIGNORS.get(assignor));
        props.put("auto.offset.reset", "earliest");
        props.put("enable.auto.commit", "false");
        props.put("allow.auto.create.topics", "false");
        for (String kv : args.all("property")) {
            int eq = kv.indexOf('=');
            if (eq < 0) {
                throw new UsageException("--property takes key=value, not " + kv);
            }
            props.put(kv.substring(0, eq).trim(), kv.substring(eq + 1));
        }
        if ("consumer".equalsIgnoreCase(props.getProperty("group.protocol", "").trim())) {
            // The broker assigns in the consumer protocol (KIP-848): the client refuses an
            // assignment strategy there, so --assignor applies to the classic protocol only.
            props.remove("partition.assignment.strategy");
        }

        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        // Per partition owned now: the offset after the last record printed.
        Map<TopicPartition, OffsetAndMetadata> consumed = new HashMap<>();
        AtomicBoolean stopping = new AtomicBoolean();
        AtomicInteger status = new AtomicInteger(1);
        CountDownLatch finished = new CountDownLatch(1);
        // SIGTERM starts the JVM's shutdown: wake the poll, let the main thread commit and close,
        // then end with its status (a plain return would exit with 143).
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (finished.getCount() == 0) {
                return;
            }
            stopping.set(true);
            consumer.wakeup();
            try {
                finished.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            System.out.flush();
            System.err.flush();
            Runtime.getRuntime().halt(status.get());
        }));

        ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (TopicPartition tp : partitions) {
                    OffsetAndMetadata o = consumed.remove(tp);
                    if (o != null) {
                        offsets.put(tp, o);
                    }
                }
                commit(consumer, offsets, "before revocation");
                if (!partitions.isEmpty()) {
                    say("revoked " + tpList(partitions));
                }
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                say("assigned " + tpList(partitions));
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> partitions) {
                for (TopicPartition tp : partitions) {
                    consumed.remove(tp);
                }
                if (!partitions.isEmpty()) {
                    say("lost " + tpList(partitions));
                }
            }
        };

        try {
            consumer.subscribe(List.of(topic), listener);
            long printed = 0;
            long sinceCommit = 0;
            long lastProgress = System.nanoTime();
            while (!stopping.get() && printed < count) {
                long idle = (System.nanoTime() - lastProgress) / 1_000_000;
                if (idle >= idleMs) {
                    break;
                }
                Iterable<ConsumerRecord<byte[], byte[]>> batch;
                try {
                    batch = consumer.poll(Duration.ofMillis(Math.min(200, idleMs - idle)));
                } catch (WakeupException e) {
                    break;
                }
                StringBuilder lines = new StringBuilder();
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    if (printed >= count) {
                        break;
                    }
                    lines.append(r.partition()).append('\t').append(r.offset()).append('\t')
                            .append(text(r.key())).append('\t').append(text(r.value())).append('\n');
                    consumed.put(new TopicPartition(r.topic(), r.partition()),
                            new OffsetAndMetadata(r.offset() + 1, r.leaderEpoch(), ""));
                    printed++;
                    sinceCommit++;
                    lastProgress = System.nanoTime();
                }
                if (lines.length() > 0) {
                    System.out.print(lines);
                    System.out.flush();
                }
                if (sinceCommit >= commitEvery) {
                    commit(consumer, new HashMap<>(consumed), "of printed records");
                    sinceCommit = 0;
                }
            }
            commit(consumer, new HashMap<>(consumed), "before closing");
            closeConsumer(consumer);
            status.set(0);
        } finally {
            System.out.flush();
            finished.countDown();
        }
        return 0;
    }

    /** Closes the consumer (the listener revokes, then it leaves), past a pending wakeup. */
    private static void closeConsumer(KafkaConsumer<?, ?> consumer) {
        try {
            consumer.close(Duration.ofSeconds(30));
        } catch (WakeupException e) {
            consumer.close(Duration.ofSeconds(30));
        }
    }

    /** Commits synchronously; a failure is reported and the member goes on, as a real one would. */
    private static void commit(KafkaConsumer<?, ?> consumer, Map<TopicPartition, OffsetAndMetadata> offsets,
            String why) {
        if (offsets.isEmpty()) {
            return;
        }
        for (int attempt = 0; attempt < 2; attempt++) {
            try {
                consumer.commitSync(offsets);
                return;
            } catch (WakeupException e) {
                // A SIGTERM woke the consumer outside poll: the flag is spent, commit again.
            } catch (KafkaException e) {
                System.err.println("java-peer: commit " + why + " failed: " + e);
                return;
            }
        }
    }

    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static String tpList(Collection<TopicPartition> partitions) {
        return partitions.stream()
                .map(tp -> tp.topic() + "-" + tp.partition())
                .collect(Collectors.joining(","));
    }

    private static String text(byte[] b) {
        return b == null ? "-" : new String(b, StandardCharsets.UTF_8);
    }

    private static int committed(Args args) throws Exception {
        String topic = args.require("topic");
        Properties props = common(args);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("group.id", args.require("group"));
        props.put("group.protocol", "classic");
        props.put("enable.auto.commit", "false");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = partitionsOf(consumer, topic, 10000);
            partitions.sort((a, b) -> Integer.compare(a.partition(), b.partition()));
            Map<TopicPartition, OffsetAndMetadata> got =
                    consumer.committed(Set.copyOf(partitions), Duration.ofSeconds(30));
            for (TopicPartition tp : partitions) {
                OffsetAndMetadata o = got.get(tp);
                ObjectNode line = JSON.createObjectNode();
                line.put("partition", tp.partition());
                if (o == null) {
                    line.putNull("offset");
                } else {
                    line.put("offset", o.offset());
                }
                System.out.println(JSON.writeValueAsString(line));
            }
        }
        return 0;
    }

    private static int createTopic(Args args) throws Exception {
        String topic = args.require("topic");
        int partitions = Integer.parseInt(args.get("partitions", "1"));
        try (Admin admin = Admin.create(common(args))) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
        }
        return 0;
    }

    /** A transactional producer with the id given (the caller calls initTransactions). */
    private static KafkaProducer<byte[], byte[]> transactionalProducer(Args args, String transactionalId)
            throws UsageException {
        Properties props = common(args);
        props.put("transactional.id", transactionalId);
        props.put("linger.ms", "5");
        return new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer());
    }

    private static int txnProduce(Args args) throws Exception {
        long count = Long.parseLong(args.require("count"));
        long perTransaction = Math.max(1, Long.parseLong(args.require("per-transaction")));
        byte[] value = new byte[Integer.parseInt(args.get("value-size", "100"))];
        java.util.Arrays.fill(value, (byte) 'x');
        String topic = args.require("topic");
        try (KafkaProducer<byte[], byte[]> producer =
                transactionalProducer(args, "klamm-java-bench-" + java.util.UUID.randomUUID())) {
            producer.initTransactions();
            long start = System.nanoTime();
            long sent = 0;
            while (sent < count) {
                producer.beginTransaction();
                for (long i = 0; i < perTransaction && sent < count; i++, sent++) {
                    producer.send(new ProducerRecord<>(topic, value));
                }
                producer.commitTransaction();
            }
            ObjectNode out = JSON.createObjectNode();
            out.put("records", sent);
            out.put("seconds", (System.nanoTime() - start) / 1e9);
            System.out.println(out);
        }
        return 0;
    }

    private static int copy(Args args) throws Exception {
        String input = args.require("topic");
        String output = args.require("output");
        long count = Long.parseLong(args.require("count"));
        long commitEvery = Math.max(1, Long.parseLong(args.get("commit-every", "1000")));
        long idleMs = Long.parseLong(args.get("timeout-ms", "10000"));
        Properties consumerProps = common(args);
        consumerProps.put("group.id", args.require("group"));
        consumerProps.put("isolation.level", "read_committed");
        consumerProps.put("enable.auto.commit", "false");
        consumerProps.put("auto.offset.reset", "earliest");
        try (KafkaProducer<byte[], byte[]> producer = transactionalProducer(args, args.require("transactional-id"));
                KafkaConsumer<byte[], byte[]> consumer =
                        new KafkaConsumer<>(consumerProps, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            boolean open = false;
            long pending = 0, copied = 0, transactions = 0, first = 0;
            long lastRecord = System.nanoTime();
            outer:
            while (copied + pending < count && (System.nanoTime() - lastRecord) / 1_000_000 < idleMs) {
                var records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    if (open) {
                        producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                        producer.commitTransaction();
                        copied += pending;
                        transactions++;
                        pending = 0;
                        offsets.clear();
                        open = false;
                    }
                    continue;
                }
                lastRecord = System.nanoTime();
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    if (copied + pending >= count) {
                        break outer;
                    }
                    if (first == 0) {
                        first = System.nanoTime();
                    }
                    if (!open) {
                        producer.beginTransaction();
                        open = true;
                    }
                    ProducerRecord<byte[], byte[]> copy = new ProducerRecord<>(output, r.key(), r.value());
                    copy.headers().add("source-offset",
                            (r.partition() + ":" + r.offset()).getBytes(StandardCharsets.UTF_8));
                    producer.send(copy);
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    pending++;
                    if (pending >= commitEvery) {
                        producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                        producer.commitTransaction();
                        copied += pending;
                        transactions++;
                        pending = 0;
                        offsets.clear();
                        open = false;
                    }
                }
            }
            if (open) {
                producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                producer.commitTransaction();
                copied += pending;
                transactions++;
            }
            ObjectNode out = JSON.createObjectNode();
            out.put("records", copied);
            out.put("transactions", transactions);
            out.put("seconds", first == 0 ? 0.0 : (System.nanoTime() - first) / 1e9);
            System.out.println(out);
        }
        return 0;
    }

    private static Properties common(Args args) throws UsageException {
        Properties props = new Properties();
        props.put("bootstrap.servers", args.require("brokers"));
        props.put("client.id", "klamm-java-peer");
        // Client properties for every client this process makes (security settings, say): one
        // key=value per line in KLAMM_PEER_PROPERTIES.
        String extra = System.getenv("KLAMM_PEER_PROPERTIES");
        if (extra != null) {
            for (String line : extra.split("\n")) {
                if (line.isBlank()) {
                    continue;
                }
                int eq = line.indexOf('=');
                if (eq <= 0) {
                    throw new UsageException("KLAMM_PEER_PROPERTIES: " + line + " is not key=value");
                }
                props.put(line.substring(0, eq).trim(), line.substring(eq + 1));
            }
        }
        return props;
    }

    private static byte[] hex(JsonNode n) throws UsageException {
        if (n == null || n.isNull() || n.isMissingNode()) {
            return null;
        }
        if (!n.isTextual()) {
            throw new UsageException("expected a hex string or null, got " + n);
        }
        try {
            return HEX.parseHex(n.asText());
        } catch (IllegalArgumentException e) {
            throw new UsageException("bad hex " + n + ": " + e.getMessage());
        }
    }

    private static String hex(byte[] b) {
        return b == null ? null : HEX.formatHex(b);
    }

    /** `--name value` options (the last one counts, or all of them) and `--flag` switches. */
    private static final class Args {
        private static final List<String> FLAGS = List.of("idempotent", "from-beginning");
        private final Map<String, String> values = new HashMap<>();
        private final Map<String, List<String>> repeated = new HashMap<>();

        static Args parse(String[] argv) throws UsageException {
            Args a = new Args();
            for (int i = 1; i < argv.length; i++) {
                String arg = argv[i];
                if (!arg.startsWith("--")) {
                    throw new UsageException("unexpected argument " + arg);
                }
                String name = arg.substring(2);
                if (FLAGS.contains(name)) {
                    a.values.put(name, "true");
                } else if (i + 1 < argv.length) {
                    String value = argv[++i];
                    a.values.put(name, value);
                    a.repeated.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
                } else {
                    throw new UsageException(arg + " needs a value");
                }
            }
            return a;
        }

        String require(String name) throws UsageException {
            String v = values.get(name);
            if (v == null) {
                throw new UsageException("missing --" + name);
            }
            return v;
        }

        String get(String name, String dflt) {
            return values.getOrDefault(name, dflt);
        }

        List<String> all(String name) {
            return repeated.getOrDefault(name, List.of());
        }

        boolean flag(String name) {
            return values.containsKey(name);
        }
    }

    private static final class UsageException extends Exception {
        UsageException(String message) {
            super(message);
        }
    }
}
