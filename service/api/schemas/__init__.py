"""The HTTP API's contract: one module of XCreate / XUpdate / XPublic models per resource, and the Problem body
every error response carries."""
