"""mm2.properties → typed msgspec structs, one concept per module:

    values            ConfigError and the value converters every reader of the file uses
    properties        the Java `.properties` file format
    keys              the key table: every key's scope, type, default, MM2's default, use and doc
    reference         docs/configuration.md's key reference, generated from the key table
    model             the structs (ClusterConfig, FlowConfig, HeartbeatConfig, EngineConfig), defaults, key names
    read_keys         the keys the loader read, and its remarks on the file
    precedence        which key sets a setting: `<source>-><target>.`, `<alias>.`, top level
    client_overrides  the client roles' Java keys mapped onto librdkafka's
    flows             one flow's keys read into a FlowConfig
    loading           the file read into an EngineConfig
    known_keys        the key names of Kafka's own config classes (generated)
    unknown_keys      keys nobody knows, with the key they most likely meant
    report            `check-config`: the file as resolved, and where the engine differs from MM2

Import from the owning module. This file imports nothing, so that values (imported by the filters
and security/*, which the loader imports in turn) loads without the rest of the package.
"""
