# shellcheck shell=bash
# Helpers shared by scripts/testbed/start and stop. Sourced, not run.

tb_log() { printf '%s testbed: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
tb_die() { printf 'testbed: error: %s\n' "$*" >&2; exit 1; }

# tb_kill_pid PID NAME: TERM, wait up to 10 s, then KILL.
tb_kill_pid() {
	local pid=$1 name=$2
	kill -0 "$pid" 2>/dev/null || return 0
	tb_log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	sleep 0.2
}

# tb_kill_pidfile FILE NAME COMM: stop the process named in FILE if its
# command name is COMM (a stale pid may have been reused by something else).
tb_kill_pidfile() {
	local file=$1 name=$2 comm=$3 pid
	[ -f "$file" ] || return 0
	pid=$(tr -dc 0-9 <"$file")
	if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
		tb_kill_pid "$pid" "$name"
	fi
	rm -f "$file"
}

# tb_port_pids PORT: pids listening on 127.0.0.1:PORT (tcp), one a line.
tb_port_pids() {
	ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

# tb_free_port PORT [soft]: stop a slapd, samba, squid or danted left listening on PORT (a
# previous test bed); fail if anything else holds it, unless soft.
tb_free_port() {
	local port=$1 soft=${2:-} pid comm
	for pid in $(tb_port_pids "$port"); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
		case "$comm" in
		slapd | samba | socat | squid | danted) tb_kill_pid "$pid" "leftover $comm on port $port" ;;
		*)
			[ -n "$soft" ] && return 0
			tb_die "port $port is held by pid $pid ($comm), not by a test server: stop it first"
			;;
		esac
	done
	for _ in $(seq 50); do
		[ -z "$(tb_port_pids "$port")" ] && return 0
		sleep 0.1
	done
	tb_die "port $port is still in use"
}

# tb_wait_ldap NAME LOGFILE PID URL CAFILE [ldapsearch args...]: wait up to
# 60 s until an anonymous RootDSE search over URL succeeds with TLS verified.
tb_wait_ldap() {
	local name=$1 logfile=$2 pid=$3 url=$4 ca=$5
	for _ in $(seq 600); do
		if LDAPTLS_CACERT="$ca" LDAPTLS_REQCERT=demand ldapsearch -x -H "$url" -s base -b "" -LLL namingContexts >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			tb_log "$name exited; last lines of $logfile:"
			tail -n 40 "$logfile" >&2 || true
			tb_die "$name failed to start"
		fi
		sleep 0.1
	done
	tb_log "$name did not answer on $url within 60 s; last lines of $logfile:"
	tail -n 40 "$logfile" >&2 || true
	tb_die "$name failed to start"
}

# tb_check_starttls NAME URL CAFILE: fail unless StartTLS (-ZZ) with the CA works.
tb_check_starttls() {
	local out
	out=$(LDAPTLS_CACERT="$3" LDAPTLS_REQCERT=demand ldapsearch -x -ZZ -H "$2" -s base -b "" -LLL namingContexts 2>&1) ||
		tb_die "$1: StartTLS on $2 failed: $out"
}
