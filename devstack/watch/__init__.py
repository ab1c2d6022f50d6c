"""Watching: every saved file becomes the least disruptive action that applies it.

`files.FileWatcher` only queues paths; `debounce.Debouncer` makes batches; `classify.classify`
says what a batch means (pure); `changes.ChangeLoop` applies it through the stack's plan.
"""
