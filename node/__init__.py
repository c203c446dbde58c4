"""The node: a partner platform's customer data, kept in its own domain, and its service."""
