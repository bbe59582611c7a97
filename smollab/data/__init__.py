"""Documents → token shards: ``sources`` (datatrove readers), ``tokenize`` (the datatrove pipeline), ``shards`` (memory-mapped reading)."""
