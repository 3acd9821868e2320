"""The walkthrough, one step per module: positional embedding (steps 2-3), attention (step 4),
feed-forward (step 5), the transformer block, masks and pooling. Keras only; nothing is imported
here."""
