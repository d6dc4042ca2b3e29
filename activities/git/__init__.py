"""Git for the workspaces: commands run off the event loop (:mod:`.gitops`), how a line
reaches its repository (:mod:`.access`) and how a token reaches git without being written
anywhere (:mod:`.credentials`)."""
