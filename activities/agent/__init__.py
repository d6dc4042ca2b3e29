"""Coding agents as supervised subprocesses.

* :mod:`activities.agent.run`: the ``run_agent`` activity (prompt, invariants, environment,
  the host's agent slot);
* :mod:`activities.agent.supervisor`: processes, clocks, budgets, turns, kills, transcript;
* :mod:`activities.agent.adapters`: the adapter contract and the ``command`` adapter; Codex,
  Claude and the presets beside it;
* :mod:`activities.agent.events` / :mod:`activities.agent.usage`: normalised events and token
  accounting shared by every adapter;
* :mod:`activities.agent.scripted_agent`: the scripted agent of the tests and the demo, a
  standalone program (so this package imports nothing: it starts fast).
"""
