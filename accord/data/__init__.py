"""Scenario data: the seeded synthetic generator and loaders for the real data sets."""
