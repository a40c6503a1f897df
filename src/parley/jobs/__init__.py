"""Background jobs: Celery app and tasks, parse jobs, stored pages and link previews."""
