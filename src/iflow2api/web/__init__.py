"""The page: its files (HTML, CSS and ES modules, shipped with the package and served by
``routes/web.py``), and what its JSON API asks of request bodies (``api.py``)."""
