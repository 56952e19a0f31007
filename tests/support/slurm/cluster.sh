#!/usr/bin/env bash
# A single-node Slurm cluster (Debian's slurm-wlm + munge) and an sshd on loopback, for the tests of
# the slurm executor. `cluster.sh up` installs what is missing (apt-get), writes the configuration under
# $SLURM_HOME (default /tmp/iliad-slurm), starts munged, slurmctld, slurmd and sshd, and waits until a
# job runs; it fails loudly when the cluster does not come up. `cluster.sh down` stops them.
set -euo pipefail

SLURM_HOME=${SLURM_HOME:-/tmp/iliad-slurm}
SSH_PORT=${ILIAD_TEST_SSH_PORT:-2222}
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

need_packages() {
  local missing=()
  { command -v sbatch && command -v slurmctld && command -v slurmd; } >/dev/null || missing+=(slurm-wlm)
  command -v munged >/dev/null || missing+=(munge)
  command -v sshd >/dev/null || missing+=(openssh-server)
  if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then apt-get install -y -q "${missing[@]}" >/dev/null
    else sudo apt-get install -y -q "${missing[@]}" >/dev/null; fi
  fi
}

# task/cgroup when the cgroup v1 memory controller is writable (memory limits enforced: a job over
# its --mem ends OUT_OF_MEMORY); task/none otherwise.
if [[ -w /sys/fs/cgroup/memory ]]; then TASK_PLUGIN=task/cgroup; else TASK_PLUGIN=task/none; fi

write_config() {
  mkdir -p "$SLURM_HOME"/{spool/ctld,spool/d,log,ssh} /etc/slurm /run/munge /var/lib/munge /var/log/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  cat > /etc/slurm/slurm.conf <<CONF
# written by tests/support/slurm/cluster.sh: a single-node test cluster
ClusterName=iliad-test
SlurmctldHost=${HOST}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=${TASK_PLUGIN}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
SchedulerType=sched/backfill
StateSaveLocation=${SLURM_HOME}/spool/ctld
SlurmdSpoolDir=${SLURM_HOME}/spool/d
SlurmctldPidFile=${SLURM_HOME}/slurmctld.pid
SlurmdPidFile=${SLURM_HOME}/slurmd.pid
SlurmctldLogFile=${SLURM_HOME}/log/slurmctld.log
SlurmdLogFile=${SLURM_HOME}/log/slurmd.log
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
MaxArraySize=10001
SchedulerParameters=sched_interval=2,bf_interval=2
JobAcctGatherType=jobacct_gather/none
NodeName=${HOST} CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=${HOST} MaxTime=00:10:00 State=UP
CONF
  cat > /etc/slurm/cgroup.conf <<CONF
# Memory limits through the cgroup (v1) memory controller: a job over its --mem is killed by the
# kernel and ends OUT_OF_MEMORY, as on a production cluster.
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
ConstrainCores=no
ConstrainDevices=no
CONF
  cp /etc/slurm/slurm.conf "$SLURM_HOME/slurm.conf"
}

start_sshd() {
  local dir=$SLURM_HOME/ssh
  [[ -f $dir/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N "" -f "$dir/host_ed25519"
  [[ -f $dir/client_ed25519 ]] || ssh-keygen -q -t ed25519 -N "" -f "$dir/client_ed25519"
  mkdir -p /root/.ssh /run/sshd && chmod 700 /root/.ssh
  grep -qF "$(cut -d' ' -f2 "$dir/client_ed25519.pub")" /root/.ssh/authorized_keys 2>/dev/null \
    || cat "$dir/client_ed25519.pub" >> /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
  cat > "$dir/sshd_config" <<CONF
Port ${SSH_PORT}
ListenAddress 127.0.0.1
HostKey ${dir}/host_ed25519
PidFile ${dir}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile /root/.ssh/authorized_keys
Subsystem sftp internal-sftp
MaxStartups 50
MaxSessions 50
CONF
  if ! [[ -f $dir/sshd.pid ]] || ! kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
    /usr/sbin/sshd -f "$dir/sshd_config"
  fi
  echo "[127.0.0.1]:${SSH_PORT} $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" > "$dir/known_hosts"
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() {
  need_packages
  write_config
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c "/usr/sbin/munged" 2>/dev/null || /usr/sbin/munged --force
  if running "$SLURM_HOME/slurmctld.pid"; then scontrol reconfigure >/dev/null 2>&1 || true; else slurmctld; fi
  running "$SLURM_HOME/slurmd.pid" || slurmd
  start_sshd
  local i
  for ((i = 0; i < 60; i++)); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then break; fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 0.5
  done
  if ! sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "ERROR: the Slurm node did not come up:" >&2; sinfo >&2 || true
    tail -20 "$SLURM_HOME/log/slurmctld.log" "$SLURM_HOME/log/slurmd.log" >&2 || true
    exit 1
  fi
  local out
  out=$(srun -N1 -t 1 hostname 2>&1) || { echo "ERROR: a test job did not run: $out" >&2; exit 1; }
  echo "Slurm $(sinfo -V | cut -d' ' -f2) is up on ${HOST} (${CPUS} CPUs); sshd on 127.0.0.1:${SSH_PORT}"
}

down() {
  for pidfile in "$SLURM_HOME/slurmd.pid" "$SLURM_HOME/slurmctld.pid" "$SLURM_HOME/ssh/sshd.pid"; do
    running "$pidfile" && kill "$(cat "$pidfile")" || true
  done
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
