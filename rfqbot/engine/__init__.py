"""Deciding: the one engine thread (state machine, journal-before-acting), its inbox, the pure
decision, market context, risk limits and the REST actions it triggers.
"""
