#!/bin/sh
# Runs one build inside a builder VM (started by /sbin/edge-vm-init, which unpacked the job disk to
# /job and /edge): the build agent's stdout and stderr go to the host live over two virtio-serial
# ports, its image is written to the out disk, then the VM ends. Shipped on every job disk, so it
# always matches the driver that reads the out disk.
#
# Out disk layout (read back by vm/job-disks.ts): sector 0 holds `EDGE-OUT-1 <bytes>\n`,
# the image archive starts at 1 MiB. The header is written last, so a VM that dies half-way leaves
# no header and the host sees no result.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "edge-run-job: $*" >/dev/console; }

finish() {
  sync
  echo b >/proc/sysrq-trigger
  sleep 10
}

port() {
  for named in /sys/class/virtio-ports/*/name; do
    [ -r "$named" ] || continue
    name=""
    read -r name <"$named" || true
    [ "$name" = "$1" ] || continue
    dir=${named%/name}
    echo "/dev/${dir##*/}"
    return 0
  done
  return 1
}

# Every HEARTBEAT_S while the agent runs: `beat <uptime>` on the heartbeat port, the sign of life
# the driver's stall watchdog (vm/stall-watchdog.ts) needs through a long silent step.
HEARTBEAT_S=3
heartbeat() {
  while :; do
    read -r up _ </proc/uptime
    echo "beat $up" || return 0
    sleep "$HEARTBEAT_S"
  done
}

tries=0
until stdout_port=$(port org.edge-registry.stdout) && stderr_port=$(port org.edge-registry.stderr) \
  && heartbeat_port=$(port org.edge-registry.heartbeat) \
  && [ -c "$stdout_port" ] && [ -c "$stderr_port" ] && [ -c "$heartbeat_port" ]; do
  tries=$((tries + 1))
  [ "$tries" -le 200 ] || { say "the log ports did not appear"; finish; }
  sleep 0.05
done

# Kernel errors (hung tasks after 30 s instead of 120, RCU stalls, lockups, the OOM killer) reach
# the console, which the driver shows when a build fails.
echo 4 >/proc/sys/kernel/printk
[ -w /proc/sys/kernel/hung_task_timeout_secs ] && echo 30 >/proc/sys/kernel/hung_task_timeout_secs

mkdir -p /job/out
# The first line of the build log: how long the VM took to come up (kernel, then init).
read -r uptime _ </proc/uptime
echo "vm: first guest command after ${EDGE_INIT_UPTIME:-?} s, job unpacked after $uptime s" >"$stdout_port"
heartbeat >"$heartbeat_port" &
say "agent starting (heartbeat every $HEARTBEAT_S s)"
AGENT_JOB_DIR=/job /bin/sh /edge/build-agent.sh >"$stdout_port" 2>"$stderr_port"
status=$?

if [ "$status" -eq 0 ] && [ -f /job/out/image.tar ]; then
  size=$(stat -c %s /job/out/image.tar)
  if dd if=/job/out/image.tar of="$EDGE_OUT_DISK" bs=1M seek=1 conv=fsync status=none 2>"$stderr_port"; then
    printf 'EDGE-OUT-1 %s\n' "$size" | dd of="$EDGE_OUT_DISK" bs=512 count=1 conv=sync,fsync status=none
  else
    echo "edge-run-job: the image ($size bytes) does not fit on the out disk" >"$stderr_port"
  fi
fi
finish
