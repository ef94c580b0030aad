"""Second factors by code: TOTP (RFC 6238) and recovery codes; the MFA grant's
`mfa_token`; the step-up check before sensitive changes. Passkeys are in passkeys/."""
