#!/bin/sh
# The original hang: this script prints, then runs a second script that runs
# `sleep 1000`. Killing only this script leaves the sleep holding the output
# pipe, and a runner waiting for end-of-file waits forever.
echo "in sleep"
"$(dirname "$0")/inner.sh"
