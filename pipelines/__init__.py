"""siyu edges: Prefect flows, the CLI, data sources (simulator, importers), I/O and publishing."""
