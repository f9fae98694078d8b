#!/usr/bin/env bash
# The Debian packages the test suite needs, in one list, for `npm test` (its `pretest`) and `.ci/run`.
# Nothing missing: prints nothing. Something missing: as root with apt-get (CI, containers) it
# installs it; otherwise, or with --check, it prints the exact install command and exits 1.
# SYSTEM_DEPS_ROOT prefixes every path checked (the script's own test points it at an empty
# directory); gcc is looked up on PATH. The checks use only shell builtins, so they cost
# milliseconds.
set -euo pipefail

check_only=0
case "${1-}" in
  "") ;;
  --check) check_only=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

root="${SYSTEM_DEPS_ROOT-}"
missing=()
have() { [ -e "$root$1" ]; }
run() { [ -x "$root$1" ]; }

# The system's Sun rpcgen and its .x corpus: the corpus tests compile every file and compare.
run /usr/bin/rpcgen && have /usr/include/rpcsvc/nfs_prot.x || missing+=(rpcsvc-proto)
# rpcb_prot.x (RFC 1833): runtime/binding is generated from it.
have /usr/include/tirpc/rpc/rpcb_prot.x || missing+=(libtirpc-dev)
# gcc and the C library headers: the C interop peers are built from rpcgen's C output.
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
# rpcbind and rpcinfo: test/rpcbind.test.ts registers with a real rpcbind (it starts one if none runs).
run /usr/sbin/rpcbind && run /usr/sbin/rpcinfo || missing+=(rpcbind)
# ip, nft, unshare and nsenter: test/netns.test.ts joins two network namespaces with a veth pair
# and loses packets with nftables rules (as root; elsewhere it is skipped, saying why).
run /usr/sbin/ip || missing+=(iproute2)
run /usr/sbin/nft || missing+=(nftables)
run /usr/bin/unshare && run /usr/bin/nsenter || missing+=(util-linux)
# The daemons test/daemons/ talks to, each started by its test in the foreground on 127.0.0.1:
# nfs-ganesha with its VFS backend (NFSv3, MOUNTv3), rpc.statd (NSM), rpc.rstatd, rpc.rusersd,
# rpc.rquotad, ypserv with makedbm (NIS), rpc.rwalld.
run /usr/bin/ganesha.nfsd || missing+=(nfs-ganesha)
vfs=("$root"/usr/lib/*/ganesha/libfsalvfs.so)
[ -e "${vfs[0]}" ] || missing+=(nfs-ganesha-vfs)
run /usr/sbin/rpc.statd || missing+=(nfs-common)
run /usr/sbin/rpc.rstatd || missing+=(rstatd)
run /usr/sbin/rpc.rusersd || missing+=(rusersd)
run /usr/sbin/rpc.rquotad || missing+=(quota)
run /usr/sbin/ypserv && run /usr/lib/yp/makedbm || missing+=(ypserv)
run /usr/sbin/rpc.rwalld || missing+=(rwalld)
# Chromium: test/bench-report.test.ts renders the benchmark's chart in a headless browser.
run /usr/bin/chromium || missing+=(chromium)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$check_only" = 0 ] && [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "system-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # The daemons' packages start them on installation (statd, ypserv, inetd's rstatd, rusersd and
  # rwalld) unless policy-rc.d says no; the tests start their own and refuse to share a program
  # number with one they did not start. Containers usually say no already; otherwise say it
  # for the length of the install.
  policy="$root/usr/sbin/policy-rc.d"
  if [ ! -e "$policy" ]; then
    /bin/mkdir -p "${policy%/*}"
    printf '#!/bin/sh\n# system-deps.sh: no service starts while the test packages install.\nexit 101\n' > "$policy"
    /bin/chmod 755 "$policy"
    trap '/bin/rm -f "$policy"' EXIT
  fi
  apt-get install -y --no-install-recommends "${missing[@]}"
  [ "$(trap -p EXIT)" = "" ] || { /bin/rm -f "$policy"; trap - EXIT; }
  # Check again: a package that installed but did not provide the file would fail the suite halfway.
  exec "$BASH" "$0" --check
fi

sudo=""
[ "$EUID" -eq 0 ] || sudo="sudo "
{
  echo "The tests need Debian packages that are not installed: ${missing[*]}"
  echo "Install them with:"
  echo
  echo "  ${sudo}apt-get install -y ${missing[*]}"
  echo
} >&2
exit 1
