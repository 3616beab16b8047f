"""The pure domain core of refdesk: models, events, text rules, routing decisions and the
operator command parser. Nothing here does I/O or imports slixmpp, aiohttp or the store."""
