"""Load each runtime back and compare it with Keras: the parity cases, the battery, the decoder
parity and `verify`. (Named `verification`, not `verify`, so that `export.verify` stays the
function.)
Nothing is imported here."""
