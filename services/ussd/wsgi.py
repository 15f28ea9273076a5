"""gunicorn entry point: `gunicorn services.ussd.wsgi:app`."""

from services.ussd import create_app

app = create_app()
