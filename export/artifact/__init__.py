"""The version folder contract every side shares: file names, manifest, metadata, versions,
tokenizer.json and the token-id contract. Standard library, numpy and `tokenizers` only; nothing is
imported here."""
