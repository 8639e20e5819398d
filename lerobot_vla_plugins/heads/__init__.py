"""Action heads shared by the policies (one model per file)."""
