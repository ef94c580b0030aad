"""Mail: the outbox, its delivery over SMTP (or into .eml files), the templates, and
the single-use tokens that mailed links carry."""
