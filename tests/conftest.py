import pytest


def pytest_collection_modifyitems(config, items):
    # everything under tests/integration talks to real brokers
    for item in items:
        if "tests/integration/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.kafka)
