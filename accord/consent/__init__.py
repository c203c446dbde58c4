"""Consent as a shared language: the purpose vocabulary and the events written to the ledger.

Nodes write these events, the coordinator validates and indexes them, auditors replay them; all
three read them through this package so they cannot drift apart.
"""
