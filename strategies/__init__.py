"""Accept/decline strategies: pure functions of (RFQ, quotes, market context, time)."""
