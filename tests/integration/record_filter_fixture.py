"""A Python record filter the tests load by name (the opt-in slow path)."""


def only_even_values(topic, partition, key, value, headers):
    return value is not None and int(value.split(b"-")[-1]) % 2 == 0
