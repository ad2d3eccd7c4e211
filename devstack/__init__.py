"""Dev tooling, never shipped: the Docker-less local stack (``tone stack``) that tests and `make demo` run on."""
