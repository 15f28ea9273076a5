"""gunicorn entry point: `gunicorn services.ussd.wsgi:app`."""

from shared.observability import configure_logging

# Before the app exists, so everything it logs (start-up included) is JSON.
configure_logging("ussd")

from services.ussd import create_app  # noqa: E402

app = create_app()
