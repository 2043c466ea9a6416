#!/usr/bin/env bash
# The key lifecycle of issue 3, driven by the MCP Inspector CLI against the built `keywarden`
# spawned over stdio (one spawn per call, one fresh database): create, list (the prefix, never the
# token), verify (valid), rotate with a 60-second grace (old and new both valid), revoke the old one
# (revoked), verify a token with one character changed (malformed), list_key_events.
#
#   npm run build && scripts/inspector-lifecycle.sh
#
# Not part of `npm test`: npx fetches the Inspector (override with INSPECTOR=…@version).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/dist/cli.js"
[ -f "$bin" ] || { echo "run npm run build first" >&2; exit 2; }
inspector=${INSPECTOR:-@modelcontextprotocol/inspector}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KEYWARDEN_DB="$work/keywarden.db" KEYWARDEN_USER=demo KEYWARDEN_LOG_LEVEL=warn

inspect() { npx -y "$inspector" --cli node "$bin" "$@" 2>/dev/null; }
call() { local tool=$1; shift; inspect --method tools/call --tool-name "$tool" "$@"; }
# Evaluates a JS expression over the tool result's structuredContent, bound to `v`.
pick() {
  node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{const r=JSON.parse(s);if(r.isError){console.error(r.content[0].text);process.exit(1)}const v=r.structuredContent;console.log(eval(process.argv[1]))})' "$1"
}

echo "## tools/list"
inspect --method tools/list | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>console.log(JSON.parse(s).tools.map((t)=>`${t.name} [${t.title}]`).join("\n")))'

echo "## create_api_key"
created=$(call create_api_key --tool-arg name=demo-gateway)
echo "$created" | pick 'JSON.stringify({id: v.id, key_prefix: v.key_prefix, expires_at: v.expires_at, scopes: v.scopes})'
id=$(echo "$created" | pick v.id)
key=$(echo "$created" | pick v.key)

echo "## list_api_keys"
listed=$(call list_api_keys)
echo "$listed" | pick 'JSON.stringify(v.keys.map((k) => ({id: k.id, key_prefix: k.key_prefix, status: k.status})))'
if echo "$listed" | grep -qF "$key"; then echo "FAIL: the listing contains the token" >&2; exit 1; fi
echo "(the listing does not contain the token)"

echo "## verify_api_key: $(call verify_api_key --tool-arg key="$key" | pick v.code)"

echo "## rotate_api_key grace_period_seconds=60"
rotated=$(call rotate_api_key --tool-arg id="$id" --tool-arg grace_period_seconds=60)
echo "$rotated" | pick 'JSON.stringify({id: v.id, previous_key_id: v.previous_key_id, previous_key_expires_at: v.previous_key_expires_at})'
new_key=$(echo "$rotated" | pick v.key)
echo "verify old: $(call verify_api_key --tool-arg key="$key" | pick v.code), new: $(call verify_api_key --tool-arg key="$new_key" | pick v.code)"

echo "## revoke_api_key (old): $(call revoke_api_key --tool-arg id="$id" --tool-arg reason=demo | pick 'v.status')"
echo "verify old: $(call verify_api_key --tool-arg key="$key" | pick v.code), new: $(call verify_api_key --tool-arg key="$new_key" | pick v.code)"

swap=A; [ "${new_key:20:1}" = A ] && swap=B
typo="${new_key:0:20}${swap}${new_key:21}"
echo "## verify with one character changed: $(call verify_api_key --tool-arg key="$typo" | pick v.code)"

echo "## list_key_events"
call list_key_events | pick 'v.events.map((e) => `${e.occurred_at} ${e.event_type} ${e.key_id} ${JSON.stringify(e.detail)}`).join("\n")'
