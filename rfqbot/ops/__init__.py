"""Running it in production: systemd notify/watchdog and status file, alerts, metrics, doctor
and status commands' checks.
"""
