"""``python -m mini_nanochat …`` is the same as the ``mini-nanochat …`` command."""
from mini_nanochat.cli import main

raise SystemExit(main())
