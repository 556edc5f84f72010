"""Example user strategies; the README's "Writing your own strategy" uses ``max_spread``."""
