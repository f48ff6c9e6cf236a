"""`forgeml server`: the platform's HTTP API over one workspace (registry, runs, jobs, data, alerts).

Every route is a thin door onto the service functions: it authenticates the bearer token, applies
the token's rate limit, and calls the service inside ``forgeml.auth.acting_as`` so the service
layer decides what the principal may do and records it.
"""
