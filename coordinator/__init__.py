"""The coordinator: registry, ledger, alignment, training, scoring and audit services."""
