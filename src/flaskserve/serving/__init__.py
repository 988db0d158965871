"""The HTTP server: gunicorn with flaskserve's buffering worker, or Flask's development server.

Nothing outside this package reaches into the server's internals; ``cli`` calls
:func:`.gunicorn.run_gunicorn` or :func:`.gunicorn.run_development`.
"""
