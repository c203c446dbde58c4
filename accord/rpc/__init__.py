"""gRPC plumbing shared by every party: mTLS credentials, servers, the error-to-status map."""
