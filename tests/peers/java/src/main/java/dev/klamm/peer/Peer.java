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
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
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
 * create-topic --brokers B --topic T [--partitions N]
 * </pre>
 *
 * Records travel as JSON lines with keys, values and header values in lowercase hex (null stays
 * null). See docs/testing.md for the exact shapes.
 *
 * <p>With {@code --transaction}, every record goes into one transaction of a transactional
 * producer (idempotent, acks=all), which is then committed or aborted; deliveries are printed
 * either way, since aborted records still occupy offsets.
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
                    "usage: produce|consume|create-topic --brokers B --topic T [options] (see docs/testing.md)");
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

    private static int createTopic(Args args) throws Exception {
        String topic = args.require("topic");
        int partitions = Integer.parseInt(args.get("partitions", "1"));
        try (Admin admin = Admin.create(common(args))) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
        }
        return 0;
    }

    private static Properties common(Args args) throws UsageException {
        Properties props = new Properties();
        props.put("bootstrap.servers", args.require("brokers"));
        props.put("client.id", "klamm-java-peer");
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

    /** `--name value` options and `--flag` switches after the command word. */
    private static final class Args {
        private static final List<String> FLAGS = List.of("idempotent", "from-beginning");
        private final Map<String, String> values = new HashMap<>();

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
                    a.values.put(name, argv[++i]);
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
