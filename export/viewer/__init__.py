"""The attention viewer: one self-contained HTML page (`attention_page`), written by
`keras-attn attend --html` and served by `keras-attn serve` at /explore/NAME."""
