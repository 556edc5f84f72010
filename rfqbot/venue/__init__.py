"""Talking to the venue over REST: profiles, signing, client-side pacing (429/418), the signed
client, the order-call transport and the typed Market Place API.
"""
