"""Queries and transactions shared by the routes and the worker: the only SQL in the service.

One module per resource: keys, tasks, batches, review, jobs, students.
"""
