"""The one app instance, separate from its factory so task modules can import it."""

from tasks.celery_app import make_app

app = make_app()

# Task modules register with shared=False: the tasks belong to this app, not to every
# Celery app built in the same process (tests, embedders).
