"""Shared helpers for the OCF resource agents in ``resource-agents/``.

Agents are separate executables so that any OCF manager (ours, Pacemaker,
``ocf-tester``) can run them; this package keeps each agent file short and
makes them behave alike (exit codes, parameter parsing, meta-data shape).
"""
