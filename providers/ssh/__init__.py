"""An SSH host: one connection per host for the whole run (connection), the Docker API
through it (forwarder), image delivery (images), the host itself, secret files."""
