"""Server-rendered pages: templates, static files and the charts the dashboard draws."""
