"""The staff web console: server-rendered pages (Jinja2) with htmx for partial updates,
served by `outreach serve` under /console, on the same application services as the API
(the audited facades of application.staff_*) with the signed-in user's browser session.
htmx and the stylesheet ship inside the package (api/web/static): nothing is fetched from
elsewhere at run time."""
