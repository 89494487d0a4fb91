"""Where a scan's source comes from: git (dulwich), a directory, or an archive."""
