"""Running a sweep: settings, the worker processes that run trials, the SQLite record, warm start, the objective."""
