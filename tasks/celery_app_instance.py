"""The one app instance, separate from its factory so task modules can import it."""

from tasks.celery_app import make_app

app = make_app()
