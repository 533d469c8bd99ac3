# conftest.py
pytest_plugins = ["aegis_actors.testing"]
