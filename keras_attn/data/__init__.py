"""Text in: the one record reader (folder, CSV, JSONL; in memory or streamed), length buckets,
corpora and the reference task. Nothing is imported here."""
