# The librdkafka client factory, shared by the fast path and the benchmark's floor (engine/bench/_floor.pyx).

_SECRET_WORDS = ("password", "secret", "jaas", "token", "key.pem", "private")


cdef rd_kafka_t *_new_client(rd_kafka_type_t kind, dict config, str cluster) except NULL:
    """A librdkafka client from string properties; a refused property is named, its value only
    when it is no secret."""
    cdef char errstr[512]
    cdef rd_kafka_conf_t *conf = rd_kafka_conf_new()
    cdef rd_kafka_t *client
    role = "producer" if kind == RD_KAFKA_PRODUCER else "consumer"
    settings = dict(config)
    settings["log.queue"] = "true"  # logs are written by the loop's thread, never by librdkafka's
    for name, value in settings.items():
        if rd_kafka_conf_set(conf, str(name).encode(), str(value).encode(), errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK:
            rd_kafka_conf_destroy(conf)
            shown = "<redacted>" if any(word in name for word in _SECRET_WORDS) else repr(value)
            raise ValueError(f"{role} for cluster {cluster}: {name} = {shown} refused: {errstr.decode()}")
    if kind == RD_KAFKA_PRODUCER:
        rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR)
    with nogil:
        client = rd_kafka_new(kind, conf, errstr, sizeof(errstr))  # owns conf from here on success
    if client == NULL:
        rd_kafka_conf_destroy(conf)  # still ours when rd_kafka_new fails
        raise ValueError(f"cannot create the {role} for cluster {cluster}: {errstr.decode()}")
    return client
