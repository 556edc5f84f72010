"""Audit side of the journal: the hash chain, views, verification, pruning, the writer lock, and
the queries behind ``rfqbot journal``.

Everything here reads the journal through a read-only connection except ``prune``, ``rebuild``
and the schema upgrade, which go through ``rfqbot.journal.store.Journal`` (the one place that writes,
holding the writer lock). Kept import-light on purpose: ``rfqbot.journal.store`` imports
``rfqbot.audit.chain``, ``views`` and ``writer_lock``, so this package must not import the
journal at import time.
"""
