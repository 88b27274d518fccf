"""OJS JSON forms of protobuf messages that both the gateway and the gRPC adapter read or write.

Imports only the standard library and the generated protobuf modules, so either side may use it.
"""
