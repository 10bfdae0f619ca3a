"""Task logic the DAG files call: importable and unit-tested, no Airflow imports here."""
