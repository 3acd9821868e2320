"""`model.fit` and the run folder: the classifier, the language model, streamed training,
init-from, backends and devices. Nothing is imported here."""
