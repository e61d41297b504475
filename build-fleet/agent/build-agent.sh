#!/bin/sh
# The in-sandbox build agent: builds /job/context with buildah into /job/out/image.tar. The same
# script runs in every sandbox (a namespace sandbox, a VM), as root there, with no network and no
# secret: pushing is the trusted fleet process's job. The contract is agent/PROTOCOL.md.
set -u

JOB=${AGENT_JOB_DIR:-/job}
SCRATCH=${AGENT_SCRATCH_DIR:-/var/lib/build-agent}

nonce=""
dockerfile=""
isolation="auto"
network="none"

# Control lines go to stdout, one printf each so they are never torn by the build's own output.
control() {
  [ -n "$nonce" ] && printf '##agent %s %s\n' "$nonce" "$*"
}

fail() {
  echo "build-agent: $*" >&2
  control "result error $*"
  exit 1
}

# job.env is KEY=value lines read as data, never sourced: its values come from a trigger's config.
[ -r "$JOB/job.env" ] || { echo "build-agent: $JOB/job.env is missing" >&2; exit 2; }
while IFS= read -r line || [ -n "$line" ]; do
  key=${line%%=*}
  value=${line#*=}
  case $key in
    AGENT_NONCE) nonce=$value ;;
    DOCKERFILE) dockerfile=$value ;;
    ISOLATION) isolation=$value ;;
    NETWORK) network=$value ;;
  esac
done <"$JOB/job.env"
[ -n "$nonce" ] || { echo "build-agent: job.env has no AGENT_NONCE" >&2; exit 2; }

# The Dockerfile must lie inside the context (the fleet checks this too).
case "/$dockerfile/" in
  //) fail "job.env names no DOCKERFILE" ;;
  *"/../"*) fail "the Dockerfile path must stay inside the context: $dockerfile" ;;
esac
case $dockerfile in /*) fail "the Dockerfile path must be relative: $dockerfile" ;; esac
[ -f "$JOB/context/$dockerfile" ] || fail "no Dockerfile at $dockerfile in the build context"
case $network in none | host) ;; *) fail "NETWORK must be none or host, not $network" ;; esac

# Configuration of our own: the sandbox's /etc is private to it. Without name servers and with
# localhost in /etc/hosts, no step waits on DNS.
mkdir -p /etc/containers "$SCRATCH/storage" "$SCRATCH/run" "$SCRATCH/tmp" || fail "cannot create $SCRATCH"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >/etc/hosts
: >/etc/resolv.conf
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >/etc/containers/policy.json
printf 'unqualified-search-registries = []\n' >/etc/containers/registries.conf
printf '[storage]\ndriver = "vfs"\nrunroot = "%s/run"\ngraphroot = "%s/storage"\n' \
  "$SCRATCH" "$SCRATCH" >/etc/containers/storage.conf
export HOME="$SCRATCH" TMPDIR="$SCRATCH/tmp" STORAGE_DRIVER=vfs BUILDAH_FORMAT=oci
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# runc needs a cgroup hierarchy in the mount table; a fresh cgroup namespace may mount its own.
# Without one, buildah's chroot isolation still works (it needs no runtime and no cgroups).
if [ "$isolation" = auto ]; then
  if grep -Eq ' - cgroup2? ' /proc/self/mountinfo 2>/dev/null; then
    isolation=oci
  elif mkdir -p /sys/fs/cgroup 2>/dev/null && mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; then
    isolation=oci
  else
    isolation=chroot
  fi
fi
case $isolation in
  oci) isolation_flags="--isolation=oci --runtime=runc --network=$network" ;;
  # chroot isolation runs steps in the agent's own network namespace (the sandbox has none).
  chroot) isolation_flags="--isolation=chroot --network=host" ;;
  *) fail "ISOLATION must be auto, oci or chroot, not $isolation" ;;
esac
echo "build-agent: buildah $(buildah --version | cut -d' ' -f3), isolation $isolation, network $network"

# Base images, fetched by the fleet: each `bases/list` line is `<dir> <local name>`, the
# directory a `dir:` image (manifest bytes as the registry served them, so digests still match)
# and the name its FROM resolves to locally.
control "phase loading"
if [ -f "$JOB/bases/list" ]; then
  while read -r name local_name || [ -n "$name" ]; do
    [ -n "$name" ] || continue
    case $name in *[!A-Za-z0-9._-]* | .*) fail "bad base directory name: $name" ;; esac
    image_id=$(buildah pull --quiet "dir:$JOB/bases/$name") || fail "cannot load base image $local_name"
    buildah tag "$image_id" "$local_name" || fail "cannot name base image $local_name"
    echo "build-agent: loaded $local_name"
  done <"$JOB/bases/list"
fi

control "phase building"
# shellcheck disable=SC2086 # isolation_flags is a list of flags
buildah bud --pull=never --layers=false --jobs=1 $isolation_flags \
  -f "$JOB/context/$dockerfile" -t "oci-archive:$JOB/out/image.tar" "$JOB/context"
status=$?
[ "$status" -eq 0 ] || fail "the build failed (buildah exit status $status)"
[ -s "$JOB/out/image.tar" ] || fail "buildah wrote no image"
control "result ok"
