"""Audit side of the journal: views, verification, pruning, and the queries behind ``rfqbot journal``.

Everything here reads the journal through a read-only connection except ``prune`` and the
schema upgrade, which go through ``rfqbot.journal.Journal`` (the one place that writes).
Kept import-light on purpose: ``rfqbot.journal`` imports ``rfqbot.audit.views`` for its
migrations, so this package must not import the journal at import time.
"""
