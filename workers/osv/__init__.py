"""A local OSV database (the per-ecosystem ``all.zip`` dumps OSV publishes) and an offline matcher
for lock and requirements files. ``python -m workers.osv --help`` lists the commands."""
