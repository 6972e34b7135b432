"""The pages: server-rendered HTML (Jinja2 templates in `templates/`), server-side SVG for the
timeline and the charts, our own CSS and a few lines of our own JavaScript (auto-refresh and
zoom niceties; every page works without it). No CDN, no third-party front-end code."""
