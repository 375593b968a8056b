"""Chain I/O: the anvil process, RPC transport, and the snapshot reader."""
