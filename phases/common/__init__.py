"""Plumbing shared by every phase, outside the phase numbering (any phase may import it).

- ``console``: ``UserError`` and ``run_command`` (user mistakes -> one ``error:`` line, exit 2),
  colour that respects ``NO_COLOR``, progress bars, the machine's CPU name.
- ``files``: atomic writes (a crash never leaves a half-written file).
- ``paths``: where data, tokenizers and runs live (``$MINI_NANOCHAT_BASE_DIR``).
"""
