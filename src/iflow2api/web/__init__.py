"""The page's assets (HTML, JS, CSS), shipped with the package."""
