"""`parley client chat`: the interactive session (prompt_toolkit)."""
