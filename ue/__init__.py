"""The `ue` command line: the application layer over the library, the Beam jobs and serving."""
