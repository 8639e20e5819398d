"""One module per policy; each defines ``cases() -> list[BenchCase]``."""
