"""Identities, roles, tokens and the one place where every door asks "may this principal do that?".

Principals are people and service tokens; each holds roles per workspace (viewer, scientist,
approver, admin). Tokens are shown once and stored only as salted hashes, with an expiry and
scopes. Service functions call :func:`require` with the operation they perform; the HTTP server,
the serving process and the TUI set who is acting with :func:`acting_as`, so they all obey the
same rules, and every decision is recorded in the audit log.
"""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".policy": ["ACTIONS", "ROLES", "Principal", "allowed_actions", "decide"],
    ".service": ["acting_as", "authenticate", "current_principal", "local_principal", "require"],
    ".tokens": ["TokenInfo", "create_token", "list_tokens", "revoke_token"],
    ".principals": ["grant", "list_principals", "revoke_role", "holds_role"],
    ".ratelimit": ["RateLimiter"],
})
