"""Instant revocation of access tokens: every instance keeps, in memory, the sessions
revoked within the last access-token lifetime, and refuses their access tokens."""
