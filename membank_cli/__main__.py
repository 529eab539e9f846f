"""``python -m membank_cli``: the same as the ``membank`` command."""

from membank_cli.app import main

main()
