#!/usr/bin/env bash
# Installs what the local stack and the tests need, and says clearly what is
# missing when it cannot: Go (required, never installed here), Java 17 for
# DynamoDB Local (installed with apt when run as root), Node/npm for the ACS
# SDK suite, DynamoDB Local itself (from the pinned npm package), and the
# suite's npm packages. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

DDB_PKG=amplify-dynamodb-simulator@2.9.30
DDB_DIR=.local/dynamodb
DDB_JAR_SHA256=454305e9bc3e6ebcca5b62569869e31563b8d7e346474e94557b2600702146c7
SDK_DIR=local/sdktest

fail() { printf '\n%s\n\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }

# Go: the toolchain that builds everything.
command -v go >/dev/null 2>&1 || fail "Go is not installed. Install Go 1.26 or newer from https://go.dev/dl/ (or your package manager) and run this again."

# Java 17+: DynamoDB Local is AWS's own Java program.
java_major() { java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'; }
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Java 17 (openjdk-17-jre-headless) with apt for DynamoDB Local"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
  else
    fail "Java 17 or newer is needed to run DynamoDB Local, and 'java' is $(command -v java >/dev/null 2>&1 && echo "version $(java_major)" || echo missing).
Install it, then run this again:
  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless
  Fedora:        sudo dnf install -y java-17-openjdk-headless
  macOS:         brew install openjdk@17"
  fi
fi

# Node and npm: they fetch DynamoDB Local and run the ACS SDK suite.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || fail "Node.js 20 (with npm) is needed for DynamoDB Local's download and the ACS SDK suite.
Install it from https://nodejs.org/ or your package manager (Debian/Ubuntu: sudo apt-get install -y nodejs npm), then run this again."

# DynamoDB Local, from the pinned npm package, without its JavaScript dependencies.
if [ ! -f "$DDB_DIR/DynamoDBLocal.jar" ]; then
  say "fetching DynamoDB Local ($DDB_PKG)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$DDB_PKG" >/dev/null) || fail "npm could not download $DDB_PKG; check your npm registry access."
  mkdir -p "$DDB_DIR.partial"
  tar xzf "$tmp"/amplify-dynamodb-simulator-*.tgz -C "$DDB_DIR.partial" --strip-components=2 package/emulator
  got=$(sha256sum "$DDB_DIR.partial/DynamoDBLocal.jar" | cut -d' ' -f1)
  [ "$got" = "$DDB_JAR_SHA256" ] || { rm -rf "$DDB_DIR.partial"; fail "DynamoDBLocal.jar has sha256 $got, expected $DDB_JAR_SHA256; refusing to use it."; }
  rm -rf "$DDB_DIR" && mv "$DDB_DIR.partial" "$DDB_DIR"
fi

# The ACS SDK suite's packages, exactly as locked.
if [ ! -d "$SDK_DIR/node_modules/@azure/communication-chat" ] || [ "$SDK_DIR/package-lock.json" -nt "$SDK_DIR/node_modules/.package-lock.json" ]; then
  say "installing the ACS SDK suite's npm packages"
  (cd "$SDK_DIR" && npm ci --silent --no-audit --no-fund) || fail "npm ci failed in $SDK_DIR."
fi

# Go modules, so tests and builds need no network later.
go mod download
