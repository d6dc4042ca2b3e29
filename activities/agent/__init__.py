"""The agent supervisor: runs coding agents as supervised subprocesses (DESIGN §3).

* :mod:`activities.agent.run`: the ``run_agent`` activity (prompt, invariants, environment);
* :mod:`activities.agent.supervisor`: processes, clocks, budgets, turns, kills, transcript;
* :mod:`activities.agent.adapters`: the adapter contract and the ``command`` adapter;
* :mod:`activities.agent.events` / :mod:`activities.agent.usage`: normalised events and token
  accounting shared by every adapter.
"""

from activities.agent.run import run_agent

__all__ = ["run_agent"]
