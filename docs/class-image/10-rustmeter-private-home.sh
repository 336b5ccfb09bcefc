# shellcheck shell=bash
# Sourced by the Jupyter Docker Stacks' start script before the server starts (the class
# image puts it in /usr/local/bin/before-notebook.d). rustmeter builds only in folders no
# other account can write in, and the stacks leave the learner's home group-writable
# (group users, for shared volumes): take that back for the home itself.
chmod go-w "${HOME}" 2>/dev/null || true
