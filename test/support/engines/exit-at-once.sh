#!/bin/sh
# Fails before it is of any use, as a program with a bad configuration does.
echo "fatal: no such queue 'inbox'" >&2
exit 3
