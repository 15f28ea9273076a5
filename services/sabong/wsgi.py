"""The WSGI entry point: `gunicorn services.sabong.wsgi:app`."""

from services.sabong import create_app

app = create_app()
