"""Queries and transactions shared by the routes and the worker: the only SQL in the service
(tests/unit/test_layers.py keeps it so).

One module per resource: keys, tasks, batches, items, review, jobs, students, exports; history holds the read models
over the append-only history that fitting and training read.
"""
