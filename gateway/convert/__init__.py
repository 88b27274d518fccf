"""OJS JSON <-> request/response messages, with the HTTP binding's quirks; one module per resource.

Rendering builds plain dicts for `orjson.dumps`. Raw JSON carried in the
extension bytes fields (`args_json`, `meta_json`, ...) is embedded with
`orjson.Fragment`, so job arguments reach the client byte for byte as they
were enqueued and are never decoded on this hot path.
"""
