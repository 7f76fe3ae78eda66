"""Data: the records format, image decoding, ingestion, filter statistics, the Grain pipeline
and the demo records. Import the submodule you need."""
