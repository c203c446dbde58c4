"""Controlled experiments at touchpoints (issue 21, items 4 and 5): declarations, deterministic
layered assignment, always-valid sequential statistics, the sample-ratio check, the
recommendation, and a seeded market to test them on. Pure code: no I/O but the report's PNG."""
