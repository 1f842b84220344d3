"""MM2's client-side concepts (internal-topic formats, replication policies, heartbeats, what MirrorClient
infers) and offset translation: the offset map, checkpoints and group offsets on the target."""
