"""The venue's WebSocket streams: connections (one thread each), frame decoding into events,
the listen key's life.
"""
