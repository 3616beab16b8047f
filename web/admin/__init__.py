"""The admin pages under /admin/ (server-rendered; every form has a CSRF token).

Each concept has its own module registering its routes: `live` (the dashboard),
`directory` (groups, queues, operators, canned messages, embed code), `moderation` (bans
and incidents), `records` (transcripts, tickets, the mail outbox), `stats`. `routes`
registers them all; `layout` holds the navigation and `render`, which every page calls."""
