"""How well a model does: per-class metrics, the TF-IDF baseline, and the figures. Nothing is
imported here."""
