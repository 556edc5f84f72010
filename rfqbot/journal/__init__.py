"""The SQLite journal: the hash-chained event log (the only writer is the engine) and the
derived tables projected from it. Reading and checking journals lives in rfqbot/audit/.
"""
