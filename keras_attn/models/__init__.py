"""The layers assembled: model builders, the checked model boundary, the cached decoder and the
attention maps. Nothing is imported here."""
