"""What a compliance officer concludes from the ledger, beyond single proofs.

- :mod:`.entries`: the verified entries up to a signed checkpoint, decoded into events.
- :mod:`.violations`: replay consent state and check every data use against it (pure).
- :mod:`.trail`: one customer's consents and uses, found through their commitment opening.
- :mod:`.witnesses`: ask the nodes to cosign a checkpoint; detect a split view.
- :mod:`.report`: a self-contained HTML report with plots.

Nothing here trusts the coordinator's word: every conclusion rests on entries re-hashed to a
checkpoint whose signature verified.
"""
