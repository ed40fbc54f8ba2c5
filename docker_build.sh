#!/usr/bin/env bash
# Build the Docker image for the experiments.
#
#   ./docker_build.sh -n confidence_mi
#
# Only Dockerfile and requirements.txt are sent to the Docker daemon (the project, its data and
# checkpoints are mounted at run time), so the build does not upload gigabytes of files.
set -euo pipefail

usage() { echo "usage: $0 -n NAME   (build the image NAME from Dockerfile; -h shows this)" >&2; }

NAME=""
while getopts ":n:h" option; do
    case "$option" in
        n) NAME="$OPTARG" ;;
        h) usage; exit 0 ;;
        :) echo "error: -$OPTARG needs a value" >&2; usage; exit 2 ;;
        *) echo "error: unknown option -$OPTARG" >&2; usage; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ -z "$NAME" ] || [ "$#" -gt 0 ]; then usage; exit 2; fi
command -v docker >/dev/null 2>&1 || { echo "error: docker is not installed or not on PATH" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
cp "$ROOT/Dockerfile" "$ROOT/requirements.txt" "$CONTEXT/"

echo "Image name: $NAME"
docker build -t "$NAME" "$CONTEXT"
