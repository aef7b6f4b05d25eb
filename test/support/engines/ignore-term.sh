#!/bin/sh
# A plain program that ignores SIGTERM: only SIGKILL ends it. Says when the trap is in place.
trap '' TERM
echo ready
while :; do sleep 1; done
