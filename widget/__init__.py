"""The patron widget's static files (embed snippet, script, strings and styles).

This directory is installed as the package `web.widget` (see pyproject.toml), so the web
app finds the files with importlib.resources wherever refdesk is installed. Only the
`.js` and `.css` files are served.
"""
