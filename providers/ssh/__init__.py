"""An SSH host: one connection per host for the whole run, the Docker API, files and
probe tunnels over it."""
