"""Generated gRPC/protobuf stubs for package accord.v1."""
