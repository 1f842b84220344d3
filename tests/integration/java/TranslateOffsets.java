// Runs MM2's own RemoteClusterUtils.translateOffsets against the target cluster and prints
// "topic partition offset metadata" per line, so a test can compare it with the engine's numbers.
// Usage: TranslateOffsets <target bootstrap servers> <source alias> <group>
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.mirror.RemoteClusterUtils;

public class TranslateOffsets {
    public static void main(String[] args) throws Exception {
        Map<String, Object> props = new HashMap<>();
        props.put("bootstrap.servers", args[0]);
        Map<TopicPartition, OffsetAndMetadata> translated =
            RemoteClusterUtils.translateOffsets(props, args[1], args[2], Duration.ofSeconds(60));
        Map<String, OffsetAndMetadata> sorted = new TreeMap<>();
        translated.forEach((tp, om) -> sorted.put(tp.topic() + " " + tp.partition(), om));
        sorted.forEach((tp, om) -> System.out.println(tp + " " + om.offset() + " " + om.metadata()));
    }
}
