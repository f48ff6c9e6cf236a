"""What the ssh, slurm and kubernetes plugins share: code snapshots, content-hash sync, job folders,
state mapping and bringing runs back into the workspace.

It registers nothing itself; the executors live in ``forgeml.plugins.ssh``, ``forgeml.plugins.slurm``
and ``forgeml.plugins.kubernetes``. Modules here are imported only when a remote job runs, so that
loading the plugins (in every forgeml process) stays cheap.
"""
