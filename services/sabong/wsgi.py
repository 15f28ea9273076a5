"""The WSGI entry point: `gunicorn services.sabong.wsgi:app`."""

from shared.observability import configure_logging

# Before the app exists, so everything it logs (start-up included) is JSON.
configure_logging("sabong")

from services.sabong import create_app  # noqa: E402

app = create_app()
