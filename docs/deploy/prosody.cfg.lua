-- Prosody (Debian's 0.12 package) for refdesk: the parts that matter, in a complete file.
--
-- Use it as /etc/prosody/prosody.cfg.lua on a new server, or copy the marked parts into an
-- existing one. Replace example.org (the operators' accounts), desk.example.org (refdesk's
-- component domain, the same as [xmpp] domain in refdesk's config) and the secret (the same
-- as [xmpp] secret). Check it with:  prosodyctl check config
-- tests/test_deploy_files.py builds a throwaway copy of this file and checks it that way.

admins = { }

-- Debian's defaults for where Prosody keeps its files.
pidfile = "/run/prosody/prosody.pid"
data_path = "/var/lib/prosody"
certificates = "certs"   -- /etc/prosody/certs; `prosodyctl --root cert import /etc/letsencrypt/live`

log = {
    info = "/var/log/prosody/prosody.log";
    error = "/var/log/prosody/prosody.err";
}

-- [refdesk] Nagle's algorithm holds small packets back; with it on, every chat line
-- through the component waits tens of milliseconds under load.
network_settings = { nagle = false }

-- [refdesk] The component port listens on loopback only: refdesk runs on this machine.
-- (On another machine: its address here, and a firewall rule allowing only refdesk.)
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

-- Operators' clients: TLS required, no plain-text passwords on the wire.
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = true
authentication = "internal_hashed"
-- Operators sign up by invitation or are added by the admin (prosodyctl adduser).
allow_registration = false

modules_enabled = {
    -- Needed by every server.
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix";
    -- [refdesk] What operators' clients on several devices expect: without carbons a
    -- client reports "service-unavailable" at login and a chat answered on the phone is
    -- missing on the desktop; MAM keeps the history for a device that was off; smacks
    -- keeps a session through a phone's flaky network without losing messages.
    "carbons"; "mam"; "smacks"; "csi_simple";
    -- Offline messages: a chat handed to an operator who just went offline is kept.
    "offline";
    -- Bookmarks, avatars, nicknames (PEP), blocking, client and server information.
    "pep"; "private"; "bookmarks"; "vcard_legacy"; "blocklist"; "version"; "uptime"; "time";
    -- Admin commands from an XMPP client.
    "admin_adhoc";
    -- [refdesk] Browser clients over WebSocket (RFC 7395): refdesk's /operator/ page
    -- connects here. Prosody serves it on its HTTPS port (5281 by default, with the
    -- certificates above): [operator_web] websocket_url in refdesk.toml is then
    -- "wss://example.org:5281/xmpp-websocket".
    "websocket";
}

-- [refdesk] How long the archive keeps chat lines for operators' devices. refdesk keeps
-- its own transcripts under its own retention rules; this is only the operators' history.
archive_expires_after = "1w"
default_archive_policy = true

VirtualHost "example.org"

-- [refdesk] The component. refdesk connects to 127.0.0.1:5347 with this secret.
Component "desk.example.org"
    component_secret = "a long random secret, the same as [xmpp] secret in refdesk.toml"
