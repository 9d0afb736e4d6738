"""Windows diagnosis: checks, remediations, sweeps and their transports."""
