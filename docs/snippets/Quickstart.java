// First event with the Java client (kafka-clients), as a single-file program:
//   java -cp "kafka-libs/*" Quickstart.java
// Two asset events and a loan request for one user, then that request's decision. Every
// record is keyed by its user_id: a record whose key is not the user_id in its value is
// dead-lettered KEY_MISMATCH and never scored.
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Quickstart {
    static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }

    static String now() {  // RFC 3339 in UTC: 2026-11-28T08:00:00.123Z
        return Instant.now().truncatedTo(ChronoUnit.MILLIS).toString();
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = env("CREDITLINE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092");
        String assets = env("CREDITLINE_TOPIC_ASSETS", "credit.assets");
        String requests = env("CREDITLINE_TOPIC_LOAN_REQUESTS", "credit.loan-requests");
        String decisions = env("CREDITLINE_TOPIC_LOAN_DECISIONS", "credit.loan-decisions");
        String user = env("USER_ID", "u-42");
        String run = env("RUN_ID", String.valueOf(Instant.now().getEpochSecond()));
        String requestId = user + ".loan." + run;

        Properties producerConfig = new Properties();
        producerConfig.put("bootstrap.servers", bootstrap);
        producerConfig.put("acks", "all");
        producerConfig.put("enable.idempotence", "true");
        producerConfig.put("key.serializer", StringSerializer.class.getName());
        producerConfig.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerConfig)) {
            String[][] events = {{"income", "12000.00"}, {"deposit", "50000.00"}};
            for (String[] event : events) {
                String value = String.format(
                    "{\"event_id\": \"%s.%s.%s\", \"user_id\": \"%s\", \"occurred_at\": \"%s\", "
                        + "\"asset_type\": \"%s\", \"value\": \"%s\", \"verified\": true}",
                    user, event[0], run, user, now(), event[0], event[1]);
                // The key IS the user_id.
                producer.send(new ProducerRecord<>(assets, user, value)).get();
            }
            Thread.sleep(2000);  // events are folded within ~100 ms; don't outrun them
            String request = String.format(
                "{\"request_id\": \"%s\", \"user_id\": \"%s\", \"requested_at\": \"%s\", "
                    + "\"amount\": \"3000.00\", \"term_months\": 12, \"displayed_status\": \"closed\"}",
                requestId, user, now());
            producer.send(new ProducerRecord<>(requests, user, request)).get();
        }

        Properties consumerConfig = new Properties();
        consumerConfig.put("bootstrap.servers", bootstrap);
        consumerConfig.put("enable.auto.commit", "false");
        consumerConfig.put("key.deserializer", StringDeserializer.class.getName());
        consumerConfig.put("value.deserializer", StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerConfig)) {
            // Every partition of the decisions topic from the start (no group, nothing committed).
            List<TopicPartition> partitions = consumer.partitionsFor(decisions).stream()
                .map(p -> new TopicPartition(decisions, p.partition()))
                .toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Instant deadline = Instant.now().plusSeconds(30);
            String match = "\"request_id\":\"" + requestId + "\"";  // use a JSON parser in real code
            while (Instant.now().isBefore(deadline)) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    if (record.value().contains(match)) {
                        System.out.println(record.value());
                        return;
                    }
                }
            }
        }
        System.err.println("no decision for " + requestId + " after 30 s: is a worker running?");
        System.exit(1);
    }
}
