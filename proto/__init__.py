"""The gRPC API of Accord (protobuf package accord.v1): sources in accord/v1, stubs in v1."""
