"""The staff JSON API (`outreach serve`, beside the webhooks): every application service the
command line has, for a signed-in user, through the access-checked, audited facades of
application.staff_*. docs/api.md shows it with curl."""
