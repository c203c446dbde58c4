"""The customer's side of consent credentials: a local wallet file and what a holder does.

:mod:`.store` keeps credentials in one JSON file (owner-only permissions, atomic writes), as a
customer's app would; :mod:`.holder` asks a channel for a credential (a commitment to the
holder's secret, which the channel never learns), accepts the signed credential after checking
it, and presents per-use proofs. The formats shared with channels and verifiers live in
:mod:`accord.consent.credential`.
"""
