"""The worker's half of each source kind (``tasks.sources``): a fetcher per kind (``git``:
``git.fetch_git``, with dulwich in a child process; ``directory``: ``directory.fetch_directory``;
``archive``: ``archive.fetch_archive``), and the clone phase every kind goes through (``fetch``)."""
