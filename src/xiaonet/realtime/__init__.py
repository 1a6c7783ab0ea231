"""A live picking session: packets from a source through the streaming engine to pick sinks
(JSON lines, a CSV table), with optional association into events (``xiaonet stream``)."""
