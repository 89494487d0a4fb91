from tests.support.edge import edge  # noqa: F401 - a fixture for the edge tests
