"""Who may do what: tenants' API keys with scopes, and per-tenant rate limits."""
