"""Accord: a privacy-preserving federated customer-data network.

The distribution maps the project's top-level folders into this namespace:
``accord.proto`` (proto/), ``accord.crypto`` (crypto/), ``accord.node`` (node/),
``accord.coordinator`` (coordinator/) and ``accord.scoring`` (scoring/).
"""

__version__ = "0.1.0"
