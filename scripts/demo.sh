#!/usr/bin/env bash
# demo.sh start|stop: run a gild demo server on 127.0.0.1:8080 with data in .data/demo and
# seed it with a sample hierarchy through the CLI. Called by `make demo` and `make demo-stop`;
# expects bin/gild to be built. Safe to run again: it stops the previous demo server first
# and every seeding step is a PUT, which creates or replaces.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
data=$root/.data/demo
host=127.0.0.1
port=8080
url=http://$host:$port
pidfile=$data/server.pid
log=$data/server.log
gild=$root/bin/gild
# The api-version the CLI sends, for the curl example.
api_version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' api/api.go)

say() { printf '%s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# demo_pid prints the pid of the running demo server, if there is one. The pid file alone
# is not proof: after a reboot the number may belong to another program.
demo_pid() {
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "gild serve --data $data" || return 1
  printf '%s\n' "$pid"
}

# stop stops the demo server and its VMs.
stop() {
  stop_server
  stop_vms
}

# stop_server stops the demo server; its VMs keep running, and the next server takes them
# over.
stop_server() {
  local pid
  if ! pid=$(demo_pid); then
    rm -f "$pidfile"
    say "No demo server is running."
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    [[ -d /proc/$pid ]] || break
    sleep 0.1
  done
  if [[ -d /proc/$pid ]]; then
    die "the demo server (pid $pid) did not stop within 10 s; see $log"
  fi
  rm -f "$pidfile"
  say "Stopped the demo server (pid $pid)."
}

# stop_vms kills the demo's VMs: QEMU runs detached from the server (VMs outlive a server
# restart), so stopping the server leaves them running.
stop_vms() {
  local n=0 p
  for p in /proc/[0-9]*; do
    [[ -r $p/cmdline ]] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "qemu-system.*$data/vms/"; then
      kill -KILL "${p#/proc/}" 2>/dev/null && n=$((n + 1))
    fi
  done
  ((n == 0)) || say "Stopped $n demo VM(s)."
}

# port_open reports whether something accepts connections on the demo port.
port_open() {
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# healthy reports whether the server answers /healthz with 200.
# It speaks HTTP through bash's /dev/tcp so the demo needs no curl.
healthy() {
  (
    exec 3<>"/dev/tcp/$host/$port"
    printf 'GET /healthz HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$host" "$port" >&3
    IFS= read -r -t 2 status <&3
    [[ $status == "HTTP/1."[01]" 200"* ]]
  ) 2>/dev/null
}

# dashboard_get prints the body of a dashboard page or export, read with the admin token,
# through bash's /dev/tcp as healthy does; it fails unless the answer is 200.
dashboard_get() {
  (
    exec 3<>"/dev/tcp/$host/$port"
    printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n\r\n' "$1" "$host" "$port" "$(<"$data/admin.token")" >&3
    IFS= read -r -t 10 status <&3
    [[ $status == "HTTP/1."[01]" 200"* ]] || exit 1
    while IFS= read -r -t 10 line <&3 && [[ $line != $'\r' ]]; do :; done
    tr -d '\r' <&3
  )
}

# table prints CSV as aligned columns (plain when column(1) is missing).
table() {
  { column -t -s, <<<"$1" 2>/dev/null || cat <<<"$1"; } | sed 's/^/  /'
}

# put PUTs a JSON body (from stdin) at an ID and prints one line about it.
put() {
  local id=$1 out
  out=$("$gild" put "$id" -f -) || die "seeding $id failed (see the message above)"
  say "  ${out%%$'\n'*}"
}

start() {
  [[ -x $gild ]] || die "$gild is missing: run make build"
  mkdir -p "$data"
  chmod 700 "$data"
  if demo_pid >/dev/null; then
    say "Stopping the previous demo server (its VMs keep running)..."
    stop_server
  fi
  if port_open; then
    die "port $port on $host is already in use by another program, so the demo server cannot start there. Stop that program (see: ss -ltnp 'sport = :$port') and run make demo again."
  fi

  say "Starting gild on $url (data in .data/demo, log in .data/demo/server.log)..."
  nohup "$gild" serve --data "$data" --addr "$host:$port" </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
  local pid
  pid=$(<"$pidfile")
  for _ in $(seq 1 150); do
    healthy && break
    if ! [[ -d /proc/$pid ]]; then
      tail -n 20 "$log" >&2 || true
      die "the server exited during start-up; its log is above and in $log"
    fi
    sleep 0.2
  done
  healthy || die "the server did not answer $url/healthz within 30 s; see $log"

  # The example commands below should work as printed, so the demo logs this CLI in.
  "$gild" login --server "$url" --token-file "$data/admin.token" >/dev/null ||
    die "gild login with $data/admin.token failed"
  say "Logged the CLI in to $url with the admin token."

  say "Seeding the sample hierarchy:"
  local mg=/providers/Microsoft.Management/managementGroups
  put "$mg/contoso" <<<'{"properties": {"displayName": "Contoso"}}'
  put "$mg/contoso-teams" <<<"{\"properties\": {\"displayName\": \"Contoso teams\", \"details\": {\"parent\": {\"id\": \"$mg/contoso\"}}}}"
  local sub rg
  for sub in payments search; do
    put "/subscriptions/$sub" <<<"{\"properties\": {\"displayName\": \"$sub\", \"managementGroupId\": \"$mg/contoso-teams\"}}"
    for rg in prod dev; do
      put "/subscriptions/$sub/resourceGroups/$rg" <<<'{"location": "local"}'
    done
  done
  say "Assigning policies at contoso:"
  put "$mg/contoso/providers/Microsoft.Authorization/policyDefinitions/allowed-image-publishers" <<'EOF'
{
  "properties": {
    "displayName": "Only allow images from approved publishers",
    "mode": "All",
    "parameters": {"publishers": {"type": "Array", "metadata": {"displayName": "Allowed publishers"}}},
    "policyRule": {
      "if": {"allOf": [
        {"field": "type", "equals": "Microsoft.Compute/virtualMachines"},
        {"not": {"field": "Microsoft.Compute/imagePublisher", "in": "[parameters('publishers')]"}}
      ]},
      "then": {"effect": "deny"}
    }
  }
}
EOF
  # Audit only (DoNotEnforce): legacy VMs stay, and show up as non-compliant.
  put "$mg/contoso/providers/Microsoft.Authorization/policyAssignments/approved-publishers" <<EOF
{"properties": {"policyDefinitionId": "$mg/contoso/providers/Microsoft.Authorization/policyDefinitions/allowed-image-publishers",
  "enforcementMode": "DoNotEnforce", "parameters": {"publishers": {"value": ["Debian", "Canonical"]}},
  "nonComplianceMessages": [{"message": "Build VMs from the golden images in the corp gallery."}]}}
EOF
  # Enforced: a VM without serviceModel pet or cattle is refused.
  put "$mg/contoso/providers/Microsoft.Authorization/policyAssignments/service-model" <<'EOF'
{"properties": {"policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/gild-service-model-tag",
  "nonComplianceMessages": [{"message": "Tag every VM serviceModel=pet or serviceModel=cattle."}]}}
EOF
  say "Building the golden image examples/debian-12-hardened (a real build: Debian from this"
  say "machine's apt mirror, customized, tattooed, booted under QEMU and checked; about 1.5 minutes"
  say "the first time, under a minute once the base is cached; the log is in .data/demo/build.log):"
  local def=/subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened
  if [[ $(id -u) -ne 0 ]]; then
    say "  skipped: image builds need root (a chroot and mounts); run make demo as root to see one."
  else
    local version
    if ! version=$("$gild" image build -f examples/debian-12-hardened/template.yaml -o json 2>"$data/build.log" |
      sed -n 's/^  "versionId": "\(.*\)",\{0,1\}$/\1/p'); then
      tail -n 30 "$data/build.log" >&2
      die "the image build failed; its log is above and in $data/build.log"
    fi
    say "  published $version"
  fi
  put "$mg/contoso/providers/Microsoft.Authorization/policyAssignments/current-images" <<'EOF'
{"properties": {"policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/gild-image-lifecycle",
  "nonComplianceMessages": [{"message": "Rebuild this VM from the latest golden image."}]}}
EOF

  say "Creating VMs:"
  put /subscriptions/search/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/legacy-1 <<'EOF'
{
  "location": "local",
  "tags": {"serviceModel": "pet"},
  "properties": {
    "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
    "storageProfile": {"imageReference": {"publisher": "RedHat", "offer": "RHEL", "sku": "8", "version": "latest"}}
  }
}
EOF
  put /subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1 <<'EOF'
{
  "location": "local",
  "tags": {"serviceModel": "cattle"},
  "properties": {
    "hardwareProfile": {"vmSize": "Standard_B2s"},
    "storageProfile": {
      "imageReference": {"publisher": "Debian", "offer": "debian-12", "sku": "12-gen2", "version": "latest"}
    }
  }
}
EOF

  if [[ $(id -u) -eq 0 ]]; then
    # Two real VMs from the gallery's latest version, booted under QEMU: a cattle and a pet.
    # They are made once; after the next make demo builds a newer version both are behind,
    # and gild vm refresh would replace the cattle and only report the pet. Their agents
    # enroll and report; the SSH baseline audits them. An SSH key of the demo's own lets
    # you in as "ops" (ssh -i .data/demo/id_ed25519 -p PORT ops@127.0.0.1, PORT from gild
    # vm show).
    [[ -s $data/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C gild-demo -f "$data/id_ed25519" ||
      die "ssh-keygen failed"
    local vm_rg=/subscriptions/payments/resourceGroups/prod
    local pids=() name image model
    local vm_id existing
    for spec in "web-1 $def@latest cattle" "batch-1 $def@latest pet"; do
      read -r name image model <<<"$spec"
      vm_id=$vm_rg/providers/Microsoft.Compute/virtualMachines/$name
      if existing=$("$gild" get "$vm_id" -o json 2>/dev/null); then
        # Kept when gild runs it; a record from a demo made before gild ran VMs is made again.
        grep -q '"vmId"' <<<"$existing" && continue
        "$gild" vm delete "$vm_id" --yes >/dev/null || die "deleting the old record of $name failed"
      fi
      say "Creating VM $name ($model, $image); it boots under QEMU and its agent enrolls..."
      "$gild" vm create "$name" -g "$vm_rg" --image "$image" --tag "serviceModel=$model" \
        --admin-username ops --ssh-key "$data/id_ed25519.pub" --wait --timeout 10m >"$data/vm-$name.txt" 2>&1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do
      wait "$p" || { cat "$data"/vm-*.txt >&2; die "creating a demo VM failed (above)"; }
    done
    for name in web-1 batch-1; do
      "$gild" guest-config assign "$vm_rg/providers/Microsoft.Compute/virtualMachines/$name" \
        --configuration LinuxSshServerSecurityBaseline --type Audit >/dev/null ||
        die "assigning the SSH baseline to $name failed"
    done
    say ""
    "$gild" vm list -g "$vm_rg"
    say ""
    "$gild" image versions "$def"
    say ""
  fi

  if "$gild" put /subscriptions/payments/resourceGroups/dev/providers/Microsoft.Compute/virtualMachines/untagged -f - \
    <<<'{"location": "local", "properties": {"storageProfile": {"imageReference": {"publisher": "Debian"}}}}' >/dev/null 2>"$data/denied.txt"; then
    die "a VM without a serviceModel tag was accepted; the service-model assignment should deny it"
  fi
  say "  Refused an untagged VM, as the service-model assignment requires:"
  say "    $(head -n 1 "$data/denied.txt")"
  "$gild" policy scan / >/dev/null || die "the compliance scan failed"
  say ""
  "$gild" compliance summary /

  # The dashboard shows what the demo made: its lists, as the pages show them, read back.
  local teams
  teams=$(dashboard_get '/ui/?export=teams&format=csv') || die "the dashboard did not answer; see $log"
  (($(wc -l <<<"$teams") > 1)) || die "the dashboard shows no team's compliance yet"
  local fleet versions
  fleet=$(dashboard_get '/ui/fleet?export=teams&format=csv') || die "the dashboard's pets-and-cattle page did not answer; see $log"
  versions=$(dashboard_get '/ui/images?export=versions&format=csv') || die "the dashboard's images page did not answer; see $log"
  (($(wc -l <<<"$versions") > 1)) || die "the dashboard shows no image version"
  say ""
  say "The dashboard at $url/ui/ shows compliance per team:"
  table "$teams"
  say "pets and cattle per team:"
  table "$fleet"
  say "and $(($(wc -l <<<"$versions") - 1)) image version(s) with their lifecycle, replication and the VMs on each (Images)."

  # A Reader token for the payments team; one from an earlier run is kept while it works.
  local reader=$data/payments-reader.token
  if [[ -s $reader ]] && GILD_TOKEN=$(<"$reader") "$gild" get /subscriptions/payments >/dev/null 2>&1; then
    say "Kept the Reader token for /subscriptions/payments in .data/demo/payments-reader.token."
  else
    "$gild" token create --role Reader --scope /subscriptions/payments \
      --description "demo: payments team, read-only" --secret-file "$reader" >/dev/null ||
      die "creating the payments Reader token failed"
    say "Created a Reader token for /subscriptions/payments in .data/demo/payments-reader.token."
  fi

  cat <<EOF

gild is running at $url (pid $pid).
  dashboard:                         $url/ui/ (sign in with a token below)
  admin token (Owner of /):          .data/demo/admin.token
  payments team token (Reader):      .data/demo/payments-reader.token
  server log:                        .data/demo/server.log

Try:
  bin/gild list / --type Microsoft.Resources/subscriptions
  bin/gild list / --type Microsoft.Management/managementGroups
  bin/gild list /subscriptions/payments --type Microsoft.Resources/resourceGroups
  bin/gild get /subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1
  bin/gild list /providers/Microsoft.Management/managementGroups/contoso -o json
  bin/gild role list
  bin/gild audit --top 20
  bin/gild compliance list / --state NonCompliant
  bin/gild compliance history /
  bin/gild image versions /subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened
  bin/gild image pull /subscriptions/platform/resourceGroups/images/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened@latest -o /tmp/debian.qcow2
  bin/gild image runs /subscriptions/platform/resourceGroups/images/providers/Microsoft.VirtualMachineImages/imageTemplates/debian-12-hardened
  bin/gild vm show web-1 -g /subscriptions/payments/resourceGroups/prod           # power, SSH port, agent, tattoo
  bin/gild guest-config show batch-1 -g /subscriptions/payments/resourceGroups/prod --name LinuxSshServerSecurityBaseline
  bin/gild vm events batch-1 -g /subscriptions/payments/resourceGroups/prod
  bin/gild vm refresh /subscriptions/payments --dry-run                          # cattle due, pets reported
  bin/gild vm console web-1 -g /subscriptions/payments/resourceGroups/prod --tail 20
  bin/gild policy validate /path/to/azure-policy/definitions
  GILD_TOKEN=\$(cat .data/demo/payments-reader.token) bin/gild list /     # the payments team sees only its own
  curl -H "Authorization: Bearer \$(cat .data/demo/admin.token)" '$url/subscriptions?api-version=$api_version'

Stop the server and its VMs with: make demo-stop
EOF
}

case ${1:-start} in
  start) start ;;
  stop) stop ;;
  *) die "usage: scripts/demo.sh start|stop" ;;
esac
