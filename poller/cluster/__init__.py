"""Several pollers sharing one site's devices: the shard map and the shard leases on Redis."""
