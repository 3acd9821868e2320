"""The `keras-attn` command line (`keras_attn.cli.main:main`): argv, exit codes and printing, one
module per command group. Nothing is imported here, so that `keras-attn --help` stays light."""
