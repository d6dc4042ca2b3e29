#!/bin/sh
# Create the namespace (if missing) and register Jidoka's search attributes on it.
#
#   register-search-attributes.sh Name=Type [Name=Type ...]
#
# Uses the `temporal` CLI and its environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (default
# "default"), TEMPORAL_API_KEY / TEMPORAL_TLS* for a secured cluster. Runs in the
# temporalio/admin-tools image (docker-compose.postgres.yml) or anywhere the CLI is installed.
# Idempotent: registering an attribute that exists with the same type succeeds; one that exists
# with another type fails loudly, because workflows would then upsert the wrong type.
# Temporal Cloud: use `tcld namespace search-attributes add` instead (deploy/cloud/README.md).
set -eu

if [ "$#" -eq 0 ]; then
  echo "usage: $0 Name=Type [Name=Type ...]" >&2
  exit 2
fi
for pair in "$@"; do
  case "$pair" in
    [A-Za-z]*=[A-Z]*) ;;
    *) echo "not Name=Type: $pair" >&2; exit 2 ;;
  esac
done

namespace="${TEMPORAL_NAMESPACE:-default}"
retention="${NAMESPACE_RETENTION:-720h}"

attempt=1
until temporal operator cluster health >/dev/null 2>&1; do
  if [ "$attempt" -ge 60 ]; then
    echo "Temporal at ${TEMPORAL_ADDRESS:-localhost:7233} is not healthy; giving up" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

if temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; then
  echo "namespace $namespace exists"
else
  temporal operator namespace create --namespace "$namespace" --retention "$retention"
  echo "namespace $namespace created (retention $retention)"
fi

# A namespace just created is unknown to the frontend until its namespace cache refreshes
# (seconds): "not found" is retried, any other refusal (such as a type clash) is final.
register() {
  tries=1
  while ! output=$(temporal operator search-attribute create --namespace "$namespace" \
      --name "$1" --type "$2" 2>&1); do
    case "$output" in
      *"not found"*)
        if [ "$tries" -lt 30 ]; then
          tries=$((tries + 1))
          sleep 2
          continue
        fi
        ;;
    esac
    echo "$output" >&2
    return 1
  done
}

for pair in "$@"; do
  register "${pair%%=*}" "${pair#*=}"
  echo "search attribute ${pair%%=*} (${pair#*=}) registered on $namespace"
done
