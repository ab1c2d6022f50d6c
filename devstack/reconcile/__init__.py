"""Desired stack vs what the engine has: observe, plan (pure), apply; until the plan is empty.

`plan.plan_stack` decides every step and why; `apply.Applier` is the only code that carries steps
out; `stack.Stack` runs rounds of both for the commands and the watcher.
"""

from .plan import Inputs, Observed, Plan, Step, Verb, plan_stack
from .stack import Stack

__all__ = ["Inputs", "Observed", "Plan", "Stack", "Step", "Verb", "plan_stack"]
