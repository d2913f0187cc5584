"""Google Cloud adapters; each module imports its cloud library lazily, only when used."""
