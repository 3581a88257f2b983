package dev.klamm.peer;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeProducersResult;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java fixture scenario: one short session that makes Apache Kafka's Java client send every
 * request the Klamm fixtures cover. The librdkafka twin is tests/peers/fixture_scenario.py.
 *
 * <pre>
 * FixtureScenario --brokers B --topic T --group G [--compression snappy] [--records 40]
 * </pre>
 *
 * In order: an admin client creates T (CreateTopics); an idempotent producer with compression
 * writes the records (InitProducerId, Produce); a classic-protocol consumer in group G subscribes
 * and reads them (FindCoordinator, JoinGroup, SyncGroup, Fetch), commits synchronously
 * (OffsetCommit), reads its committed offsets (OffsetFetch), looks offsets up by timestamp and
 * the end offsets (ListOffsets); a transactional producer then writes one record and the group's
 * offsets in a transaction and commits it (FindCoordinator for the transaction, InitProducerId,
 * AddPartitionsToTxn and AddOffsetsToTxn under transactions version 1, TxnOffsetCommit with the
 * consumer's group metadata, EndTxn); the consumer polls on for longer than its heartbeat
 * interval (Heartbeat) and closes (LeaveGroup). Then a transactional producer keeps a
 * transaction (of offsets) open while the admin client lists the transactions
 * (ListTransactions, with and without filters), describes the open one (DescribeTransactions)
 * and the producers of both partitions (DescribeProducers); the producer aborts. Prints one JSON
 * summary line; any error exits
 * non-zero.
 */
public final class FixtureScenario {
    private static final int PARTITIONS = 2;
    private static final long BASE_TS = 1_600_000_000_000L;
    private static final int HEARTBEAT_MS = 100;

    private FixtureScenario() {}

    public static void main(String[] argv) {
        int status = 0;
        try {
            run(argv);
        } catch (Throwable e) {
            System.err.println("java-fixture-scenario: error: " + e);
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                System.err.println("  caused by: " + c);
            }
            status = 1;
        }
        System.out.flush();
        System.exit(status);
    }

    private static void run(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + argv[i]);
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        String brokers = require(args, "brokers");
        String topic = require(args, "topic");
        String group = require(args, "group");
        String compression = args.getOrDefault("compression", "snappy");
        int count = Integer.parseInt(args.getOrDefault("records", "40"));

        try (Admin admin = Admin.create(common(brokers))) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get();
        }
        produce(brokers, topic, compression, count);
        String consumed = consume(brokers, topic, group, count);
        String transactions = transactionAdmin(brokers, topic, group);
        System.out.println(consumed.substring(0, consumed.length() - 1) + "," + transactions + "}");
    }

    private static String require(Map<String, String> args, String name) {
        String v = args.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + name);
        }
        return v;
    }

    private static Properties common(String brokers) {
        Properties props = new Properties();
        props.put("bootstrap.servers", brokers);
        props.put("client.id", "klamm-fixture-scenario");
        return props;
    }

    /** Keys, values (one null, some of a few hundred bytes) and headers (one null value). */
    private static void produce(String brokers, String topic, String compression, int count) throws Exception {
        Properties props = common(brokers);
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        props.put("enable.idempotence", "true");
        props.put("acks", "all");
        props.put("compression.type", compression);
        props.put("linger.ms", "20");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            List<java.util.concurrent.Future<?>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                byte[] key = i == 3 ? null : ("key-" + i).getBytes(StandardCharsets.UTF_8);
                byte[] value = i == 5 ? null : ("value-" + i + " ").repeat(1 + (i % 4) * 20).getBytes(StandardCharsets.UTF_8);
                List<Header> headers = new ArrayList<>();
                headers.add(new RecordHeader("index", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
                if (i % 3 == 0) {
                    headers.add(new RecordHeader("null-value", null));
                }
                sent.add(producer.send(new ProducerRecord<>(topic, i % PARTITIONS, BASE_TS + 10L * i, key, value, headers)));
            }
            producer.flush();
            for (java.util.concurrent.Future<?> f : sent) {
                f.get();
            }
        }
    }

    /**
     * An open transaction, looked at with the admin client's transaction calls. Returns the
     * JSON members that say what the admin saw.
     *
     * <p>The transaction holds offsets, not records: brokers of Kafka 4 run transactions of
     * version 2, where the client adds partitions by producing at Produce v12, and the fixture
     * recording caps Produce at the version Klamm implements; AddOffsetsToTxn is the same in
     * both transaction versions.
     */
    private static String transactionAdmin(String brokers, String topic, String group) throws Exception {
        String transactionalId = "klamm-fixture-txn";
        Properties props = common(brokers);
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        props.put("transactional.id", transactionalId);
        props.put("transaction.timeout.ms", "60000");
        TopicPartition first = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
                Admin admin = Admin.create(common(brokers))) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.sendOffsetsToTransaction(
                    Map.of(first, new OffsetAndMetadata(1)), new ConsumerGroupMetadata(group + "-txn"));

            Collection<TransactionListing> all = admin.listTransactions().all().get();
            ListTransactionsOptions filtered = new ListTransactionsOptions()
                    .filterStates(List.of(TransactionState.ONGOING))
                    .filterOnDuration(0);
            Collection<TransactionListing> ongoing = admin.listTransactions(filtered).all().get();
            TransactionDescription described =
                    admin.describeTransactions(List.of(transactionalId)).description(transactionalId).get();
            if (described.state() != TransactionState.ONGOING || described.topicPartitions().isEmpty()) {
                throw new IllegalStateException("the open transaction is described as " + described);
            }
            DescribeProducersResult producers = admin.describeProducers(List.of(first, new TopicPartition(topic, 1)));
            int active = producers.partitionResult(first).get().activeProducers().size();
            producer.abortTransaction();
            return String.format(
                    "\"transactions_listed\":%d,\"ongoing_listed\":%d,\"txn_partitions\":%d,\"active_producers\":%d",
                    all.size(), ongoing.size(), described.topicPartitions().size(), active);
        }
    }

    /** One committed transaction: a record and the group's committed offsets, again. */
    private static void transact(
            String brokers,
            String topic,
            KafkaConsumer<byte[], byte[]> consumer,
            Map<TopicPartition, OffsetAndMetadata> committed)
            throws Exception {
        Properties props = common(brokers);
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        props.put("transactional.id", "klamm-fixture-scenario-" + java.util.UUID.randomUUID());
        props.put("transaction.timeout.ms", "30000");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            producer.beginTransaction();
            byte[] key = "txn-key".getBytes(StandardCharsets.UTF_8);
            byte[] value = "txn-value".getBytes(StandardCharsets.UTF_8);
            producer.send(new ProducerRecord<>(topic, 0, BASE_TS, key, value)).get();
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : committed.entrySet()) {
                if (e.getValue() != null) {
                    offsets.put(e.getKey(), new OffsetAndMetadata(e.getValue().offset()));
                }
            }
            producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
            producer.commitTransaction();
        }
    }

    private static String consume(String brokers, String topic, String group, int count) throws Exception {
        Properties props = common(brokers);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("group.id", group);
        props.put("group.protocol", "classic");
        props.put("auto.offset.reset", "earliest");
        props.put("enable.auto.commit", "false");
        props.put("session.timeout.ms", "6000");
        props.put("heartbeat.interval.ms", Integer.toString(HEARTBEAT_MS));
        Set<TopicPartition> partitions = new HashSet<>();
        for (int p = 0; p < PARTITIONS; p++) {
            partitions.add(new TopicPartition(topic, p));
        }
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic));
            int consumed = 0;
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (consumed < count) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("consumed " + consumed + " of " + count + " records in 60 s");
                }
                consumed += consumer.poll(Duration.ofMillis(200)).count();
            }
            consumer.commitSync();
            Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(partitions);
            Map<TopicPartition, Long> targets = new HashMap<>();
            for (TopicPartition tp : partitions) {
                targets.put(tp, BASE_TS + 100);
            }
            Map<TopicPartition, OffsetAndTimestamp> byTime = consumer.offsetsForTimes(targets);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            transact(brokers, topic, consumer, committed);
            // Several heartbeat intervals without a rebalance.
            long until = System.nanoTime() + 1_000_000_000L;
            while (System.nanoTime() < until) {
                consumer.poll(Duration.ofMillis(100));
            }
            long committedTotal = 0;
            for (OffsetAndMetadata o : committed.values()) {
                committedTotal += o == null ? 0 : o.offset();
            }
            if (committedTotal != count) {
                throw new IllegalStateException("committed offsets " + committed + " do not add up to " + count);
            }
            return String.format(
                    "{\"consumed\":%d,\"committed\":%d,\"offsets_for_times\":%d,\"end_offsets\":%d}",
                    consumed, committedTotal, byTime.size(), ends.size());
        }
    }
}
