"""rfqbot: a taker daemon for HashKey Exchange's Market Place (RFQ)."""

__version__ = "0.1.0"
