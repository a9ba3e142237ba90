// Creates Kafka ACL bindings with Kafka's own Admin client, for the e2e tests.
//
// aiokafka has no ACL API (and only CreateAcls v0/v1, which Kafka 4 removed), so the tests
// run this single source file with the broker's jars:
//   java -cp '<kafka libs>/*' KafkaAcls.java <bootstrap> <ca.pem>
// It logs in over SASL_SSL (SCRAM-SHA-512) as KAFKA_ACL_USER / KAFKA_ACL_PASSWORD (from the
// environment, so the password is on no command line) and reads one binding per stdin line:
//   <principal> TAB <topic|group> TAB <literal name> TAB <operation, e.g. READ>
// Each is an ALLOW from any host. It prints how many were created; any error exits non-zero.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class KafkaAcls {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: KafkaAcls <bootstrap> <ca.pem> < bindings.tsv");
            System.exit(2);
        }
        List<AclBinding> bindings = new ArrayList<>();
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split("\t");
            ResourcePattern resource = new ResourcePattern(
                    ResourceType.fromString(f[1].toUpperCase(Locale.ROOT)), f[2], PatternType.LITERAL);
            AclOperation operation = AclOperation.fromString(f[3].toUpperCase(Locale.ROOT));
            if (resource.resourceType() == ResourceType.UNKNOWN || operation == AclOperation.UNKNOWN) {
                throw new IllegalArgumentException("not a binding: " + line);
            }
            bindings.add(new AclBinding(
                    resource, new AccessControlEntry(f[0], "*", operation, AclPermissionType.ALLOW)));
        }
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("security.protocol", "SASL_SSL");
        props.put("sasl.mechanism", "SCRAM-SHA-512");
        props.put("sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                        + System.getenv("KAFKA_ACL_USER") + "\" password=\""
                        + System.getenv("KAFKA_ACL_PASSWORD") + "\";");
        props.put("ssl.truststore.type", "PEM");
        props.put("ssl.truststore.location", args[1]);
        try (Admin admin = Admin.create(props)) {
            admin.createAcls(bindings).all().get(60, TimeUnit.SECONDS);
        }
        System.out.println("created " + bindings.size() + " ACL bindings");
    }
}
