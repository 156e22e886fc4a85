"""File formats teams already use: Label Studio JSON both ways; final labels with provenance out to JSONL, CSV,
Parquet and a Hugging Face `datasets` folder; raw items in from the same file types."""
