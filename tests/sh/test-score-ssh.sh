#!/usr/bin/env bash
# fz-score over ssh: an sshd of the test's own on 127.0.0.1 (its own host key, a key pair
# made here, a spare port), GNU parallel sending the model (--basefile) and each batch's
# files (--transferfile) to it, running the jobs there and bringing the rows back; the
# table must equal the one made on this machine alone.
. "$(dirname "$0")/lib.sh"
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || skip "sshd is not installed (Debian package openssh-server)"
[ "$(id -u)" -eq 0 ] || skip "not root: the test's sshd must run as root"
for t in ssh ssh-keygen rsync parallel perl; do
    command -v $t >/dev/null || skip "$t is not installed"
done
S=$FZ_ROOT/pipelines/fz-score
cd "$T" || fail "cd $T"

sshd_pid=
# one ssh connection carries all the sessions (ControlMaster): the test's time is then
# the jobs', not key exchanges'
stop() {
    [ -f ssh_config ] && ssh -F ssh_config -O exit fzhost 2>/dev/null
    [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null && wait "$sshd_pid" 2>/dev/null
    cd / && rm -rf "$T"
}
trap stop EXIT

ssh-keygen -q -t ed25519 -N '' -f host_key || fail "ssh-keygen (host)"
ssh-keygen -q -t ed25519 -N '' -f client_key || fail "ssh-keygen (client)"
cp client_key.pub authorized_keys
chmod 600 authorized_keys
cat >sshd_config <<EOF
HostKey $T/host_key
AuthorizedKeysFile $T/authorized_keys
ListenAddress 127.0.0.1
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
UseDNS no
EOF
mkdir -p /run/sshd # privilege separation directory sshd insists on
"$SSHD" -t -f sshd_config || fail "sshd rejects its configuration"

# a spare port: try a few, keep the first where sshd stays up and answers
port='' tries=0
while [ -z "$port" ] && [ $tries -lt 5 ]; do
    p=$((20000 + RANDOM % 30000))
    tries=$((tries + 1))
    "$SSHD" -D -e -f sshd_config -p "$p" 2>>sshd.log &
    sshd_pid=$!
    cat >ssh_config <<EOF
Host fzhost
  HostName 127.0.0.1
  Port $p
  User root
  IdentityFile $T/client_key
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  KexAlgorithms curve25519-sha256
  ControlMaster auto
  ControlPath $T/cm-%C
  ControlPersist 60
EOF
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "$sshd_pid" 2>/dev/null || break
        if ssh -F ssh_config fzhost true 2>/dev/null; then port=$p; break; fi
        sleep 0.3
    done
    if [ -z "$port" ]; then
        kill "$sshd_pid" 2>/dev/null
        wait "$sshd_pid" 2>/dev/null
        sshd_pid=
    fi
done
[ -n "$port" ] || fail "sshd did not start: $(tail -n 3 sshd.log)"
export PARALLEL_SSH="ssh -F $T/ssh_config"

fz-prep mnist:train "$DATA/mnist-small.tgz" | fz-mask | fz-train -a fcvae-mlp -m 1 -o m.st 2>/dev/null ||
    fail "training the model"
cp -r "$DATA/images" img
"$S" -i m.st -N 3 -o local.tsv img || fail "the run on this machine"

# --- only the remote host: 4 jobs, every one through ssh; the tools are found by --path
echo "2/fzhost" >hosts
expect_exit 0 "$S" -i m.st -N 3 -w R --sshloginfile hosts --path "$FZ_BIN" -o remote.tsv img
cmp -s remote.tsv local.tsv || fail "remote rows differ: $(diff remote.tsv local.tsv | head -4)"
[ "$(awk -F'\t' 'NR > 1 && $2 == "fzhost" && $7 == 0' R/joblog | wc -l)" -eq 4 ] ||
    fail "not all 4 jobs ran on fzhost: $(cut -f1-8 R/joblog)"
# --cleanup removed the remote working directory with the model and the files
ls -d /tmp/fz-score."$(hostname -s 2>/dev/null || echo host)".* 2>/dev/null &&
    fail "the remote working directory is left behind"

# --- the remote host and this machine together (-S, ':' is local)
expect_exit 0 "$S" -i m.st -N 2 -j 1 -S "1/fzhost,1/:" --path "$FZ_BIN" -o mixed.tsv img
cmp -s mixed.tsv local.tsv || fail "rows of the mixed run differ"

# --- without --path the remote side does not find the tools: the job says so (unless
# fz is installed on this machine's PATH for ssh sessions)
ssh -F ssh_config fzhost 'command -v fz-prep' >/dev/null 2>&1 && exit 0
expect_exit 1 "$S" -i m.st -N 100 -S fzhost -o none.tsv img
grep -q '^fz-score: job 1: fz-prep not found on ' "$T/err" || fail "no message naming the tool: $(cat "$T/err")"
tail -n 1 "$T/err" | grep -q '^fz-score: 1 of 1 jobs failed or did not run' || fail "no summary: $(cat "$T/err")"
exit 0
