"""The bot's HTTP server: health endpoints for load balancers and orchestrators.

`server.create_app` assembles the application, `routes.setup_routes` lists every URL,
the views live beside the checks they report (`health.py`).
"""
