"""A simulated Windows Kubernetes cluster speaking the real wire protocols, for tests and demos."""
