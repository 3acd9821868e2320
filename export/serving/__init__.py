"""The model server on top of the runtime: the app, the model repository, the two REST protocols,
dynamic batching and the Triton repository. Never imports keras, tensorflow or keras_attn; nothing
is
imported here."""
