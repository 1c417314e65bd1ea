"""Access control: users, roles, sign-in, API tokens, scoping and the audit trail."""
