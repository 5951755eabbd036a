#!/usr/bin/env bash
# A small qemu guest with a real pure cgroup-v2 kernel (every controller), for the
# tests that need memory.max, pids.max, cpu.max and the like, which this kind of
# host (hybrid layout, controllers bound to v1) cannot give. integration/vm/README.md
# tells how it works.
#
#   guest.sh setup
#       Installs what is missing, fetches Debian's current kernel (resolved from
#       linux-image-amd64, never pinned) and builds the initramfs, all into
#       ${DMON_VM_DIR:-/var/cache/dmon-vm}. Quick and silent when that is done.
#   guest.sh run [--systemd] [--timeout SECONDS] [--env NAME=VALUE]... -- CMD [ARGS...]
#       Boots the guest and runs CMD there as root, in the host's root (read-only,
#       under a tmpfs overlay) and the caller's working directory. Its stdout and
#       stderr come out here; the exit status is CMD's, or 124 when time ran out,
#       125 when the guest could not boot. With --systemd, the host's systemd is
#       the guest's PID 1 and CMD runs as its service dmon-guest.service.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${DMON_VM_DIR:-/var/cache/dmon-vm}"
export DEBIAN_FRONTEND=noninteractive

# The modules the guest needs that Debian builds as modules (their dependencies
# are followed): the virtio PCI transport, the consoles for stdout and stderr, 9p
# for the host's files and the share, overlay to make the host's root writable.
modules=(virtio_pci virtio_console 9pnet_virtio 9p overlay)

first() { printf '%s' "$1"; }
say() { printf 'guest.sh: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 125
}

# --- setup -------------------------------------------------------------------

# Installs the Debian packages of the commands that are missing.
install_tools() {
  local missing=() pair
  for pair in qemu-system-x86_64:qemu-system-x86 cpio:cpio xz:xz-utils zstd:zstd gzip:gzip \
    od:coreutils flock:util-linux timeout:coreutils; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  # The initramfs needs a static busybox: the guest has no libraries before chroot.
  [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
  ((${#missing[@]})) || return 0
  ((EUID == 0)) || die "missing packages (${missing[*]}); run 'guest.sh setup' as root"
  say "installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Prints the versioned kernel package that linux-image-amd64 depends on now, and
# its version ("linux-image-6.1.0-57-amd64 6.1.192-3"), refreshing the package
# lists once if they know nothing of it.
resolve_kernel() {
  local pkg="" version="" try
  for try in 1 2; do
    pkg="$(apt-cache depends linux-image-amd64 2>/dev/null |
      sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)"
    [[ -n "$pkg" ]] && version="$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')"
    [[ -n "$pkg" && -n "$version" && "$version" != "(none)" ]] && break
    ((try == 1)) && apt-get update -qq >&2
  done
  [[ -n "$pkg" && -n "$version" ]] || die "cannot resolve the kernel package that linux-image-amd64 depends on"
  printf '%s %s\n' "$pkg" "$version"
}

# Writes the uncompressed ELF vmlinux held in bzImage $1 to $2. The boot protocol's
# setup header gives where the compressed payload starts (after the real-mode
# setup sectors, at payload_offset) and how long it is; its magic names the
# compressor. Booting the ELF (PVH entry) skips the decompression under emulation.
extract_vmlinux() {
  local bz="$1" out="$2" sects offset length magic
  sects="$(od -An -tu1 -j $((0x1f1)) -N 1 "$bz" | tr -d ' ')"
  ((sects == 0)) && sects=4
  offset="$(od -An -tu4 -j $((0x248)) -N 4 "$bz" | tr -d ' ')"
  length="$(od -An -tu4 -j $((0x24c)) -N 4 "$bz" | tr -d ' ')"
  tail -c +$(((sects + 1) * 512 + offset + 1)) "$bz" | head -c "$length" >"$out.payload"
  magic="$(od -An -tx1 -N 6 "$out.payload" | tr -d ' \n')"
  # The payload ends with 4 bytes of size, which some decompressors call garbage:
  # their exit status is not trusted, the ELF magic of the result is.
  case "$magic" in
    fd377a585a00) xz -dc --single-stream <"$out.payload" ;;
    1f8b*) gzip -dc <"$out.payload" ;;
    28b52ffd*) zstd -dc <"$out.payload" ;;
    5d00*) xz -dc --format=lzma <"$out.payload" ;;
    *) say "unknown kernel compression (magic $magic)" ;;
  esac >"$out.tmp" 2>/dev/null || true
  rm -f "$out.payload"
  if [[ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' \n')" == 7f454c46 ]]; then
    mv "$out.tmp" "$out"
  else
    rm -f "$out.tmp"
    return 1
  fi
}

# Fetches and unpacks kernel package $1 (version $2) into $cache/kernel, with the
# uncompressed vmlinux beside it.
fetch_kernel() {
  local pkg="$1" version="$2" scratch
  say "fetching $pkg $version"
  scratch="$cache/kernel.new"
  rm -rf "$scratch" "$cache/kernel.old"
  mkdir -p "$scratch/deb"
  (cd "$scratch/deb" && { apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version" || { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version"; }; }) >&2 ||
    die "cannot download $pkg $version"
  dpkg-deb -x "$scratch"/deb/*.deb "$scratch/root"
  rm -rf "$scratch/deb"
  local bz
  bz="$(first "$scratch"/root/boot/vmlinuz-*)"
  extract_vmlinux "$bz" "$scratch/vmlinux" || say "could not extract vmlinux; the guest boots the bzImage (slower)"
  printf '%s %s\n' "$pkg" "$version" >"$scratch/stamp"
  [[ -d "$cache/kernel" ]] && mv "$cache/kernel" "$cache/kernel.old"
  mv "$scratch" "$cache/kernel"
  rm -rf "$cache/kernel.old"
}

# Builds the initramfs $1: a static busybox, the guest init, and the modules
# it loads, decompressed, with their dependencies first (from each module's
# depends= in .modinfo).
build_initramfs() {
  local target="$1" kdir kver stage
  kdir="$(first "$cache"/kernel/root/lib/modules/*)"
  kver="${kdir##*/}"
  stage="$cache/initramfs.stage"
  rm -rf "$stage"
  mkdir -p "$stage"/{bin,dev,proc,sys,modules,host,share,rw,newroot}
  cp /bin/busybox "$stage/bin/busybox"
  cp "$here/init" "$stage/init"
  chmod 755 "$stage/init"

  # Module name (with _ for -) to its file, and the names built into the kernel.
  local -A file=() builtin=() loaded=()
  local f b
  while IFS= read -r f; do
    b="${f##*/}" && b="${b%%.ko*}" && file[${b//-/_}]="$f"
  done < <(find "$kdir/kernel" -name '*.ko*')
  while IFS= read -r f; do
    b="${f##*/}" && b="${b%%.ko*}" && builtin[${b//-/_}]=1
  done <"$kdir/modules.builtin"

  local order=()
  add_module() {
    local name="${1//-/_}" dep deps
    [[ -n "${loaded[$name]:-}" || -n "${builtin[$name]:-}" ]] && return 0
    loaded[$name]=1
    [[ -n "${file[$name]:-}" ]] || die "kernel $kver has no module $name"
    case "${file[$name]}" in
      *.ko.xz) xz -dc "${file[$name]}" ;;
      *.ko.zst) zstd -dc "${file[$name]}" ;;
      *.ko.gz) gzip -dc "${file[$name]}" ;;
      *) cat "${file[$name]}" ;;
    esac >"$stage/modules/$name.ko"
    deps="$(tr '\0' '\n' <"$stage/modules/$name.ko" | sed -n 's/^depends=//p' | head -n 1)"
    for dep in ${deps//,/ }; do add_module "$dep"; done
    order+=("$name")
  }
  local m
  for m in "${modules[@]}"; do add_module "$m"; done
  printf '%s\n' "${order[@]}" >"$stage/modules/order"

  (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$target.tmp"
  mv "$target.tmp" "$target"
  rm -rf "$stage"
}

# What the initramfs is built from: a change to any of these rebuilds it.
initramfs_stamp() {
  cat "$cache/kernel/stamp" "$here/init" /bin/busybox <(declare -f build_initramfs) <(echo "${modules[*]}") |
    sha256sum | cut -d' ' -f1
}

# The initramfs built from what initramfs_stamp hashes. Named by that hash, so
# that checkouts with different inits (two branches tested at once) share the
# cache, each with its own initramfs, instead of rebuilding it in turn.
initramfs() {
  printf '%s/initramfs.%s.cpio' "$cache" "$(initramfs_stamp | cut -c1-16)"
}

# Whether the cache is complete, without asking apt (for run, as any user).
cache_complete() {
  [[ -s "$cache/kernel/stamp" && -s "$(initramfs)" ]]
}

setup() {
  install_tools
  mkdir -p "$cache"
  # One setup at a time (two test binaries may start it together).
  exec 9>"$cache/.lock"
  flock 9
  local want
  want="$(resolve_kernel)"
  if [[ "$(cat "$cache/kernel/stamp" 2>/dev/null)" != "$want" ]]; then
    # shellcheck disable=SC2086 # "package version"
    fetch_kernel $want
  fi
  if ! cache_complete; then
    say "building the initramfs"
    build_initramfs "$(initramfs)"
  fi
  exec 9>&-
}

# --- run ---------------------------------------------------------------------

usage() {
  say "usage: guest.sh setup | guest.sh run [--systemd] [--timeout SECONDS] [--env NAME=VALUE]... -- CMD [ARGS...]"
  exit 2
}

run() {
  local limit=300 envs=() systemd=""
  while (($#)); do
    case "$1" in
      --systemd) systemd=1; shift ;;
      --timeout) [[ "${2:-}" =~ ^[0-9]+$ ]] || usage; limit="$2"; shift 2 ;;
      --env) [[ "${2:-}" == [A-Za-z_]*=* ]] || usage; envs+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) usage ;;
    esac
  done
  (($#)) || usage
  # A setup of its own process (so that set -e holds there), any failure of it
  # meaning no guest.
  if ! cache_complete; then
    bash "${BASH_SOURCE[0]}" setup || die "could not set up the guest (see above)"
  fi
  command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing; run 'guest.sh setup'"

  # The share: the command in (argv and environment NUL-separated, the working
  # directory), its exit status and the consoles out.
  local share
  share="$(mktemp -d "${TMPDIR:-/tmp}/dmon-vm.XXXXXX")"
  qemu_pid="" tails=()
  trap 'finish_run "$share"' EXIT
  trap 'exit 143' TERM INT HUP
  printf '%s\0' "$@" >"$share/argv"
  {
    printf '%s\0' "PATH=$PATH" HOME=/root DMON_GUEST=1
    [[ -n "$systemd" ]] && printf '%s\0' DMON_GUEST_SYSTEMD=1
    [[ -n "${CI+set}" ]] && printf '%s\0' "CI=$CI"
    ((${#envs[@]})) && printf '%s\0' "${envs[@]}"
  } >"$share/env"
  printf '%s' "$PWD" >"$share/cwd"
  : >"$share/stdout" && : >"$share/stderr" && : >"$share/console"
  [[ -z "$systemd" ]] || : >"$share/systemd"

  local kernel="$cache/kernel/vmlinux"
  [[ -s "$kernel" ]] || kernel="$(first "$cache"/kernel/root/boot/vmlinuz-*)"
  # TCG only: this host's /dev/kvm cannot run a guest kernel (ENVIRONMENT.md).
  timeout --kill-after=10 "$limit" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -m 1024 -smp 2 -machine pc \
    -nodefaults -no-user-config -display none -no-reboot \
    -kernel "$kernel" -initrd "$(initramfs)" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 cryptomgr.notests audit=0 nokaslr mitigations=off pci=noacpi" \
    -serial "file:$share/console" \
    -fsdev "local,id=host,path=/,security_model=none,readonly=on,multidevs=remap" \
    -device virtio-9p-pci,fsdev=host,mount_tag=host \
    -fsdev "local,id=share,path=$share,security_model=none,multidevs=remap" \
    -device virtio-9p-pci,fsdev=share,mount_tag=share \
    -device virtio-serial-pci \
    -chardev "file,id=out,path=$share/stdout" -device virtconsole,chardev=out \
    -chardev "file,id=err,path=$share/stderr" -device virtconsole,chardev=err \
    </dev/null >"$share/qemu.log" 2>&1 &
  qemu_pid=$!
  # Stream the consoles while the guest runs; each tail reads what is left and
  # ends once qemu is gone (and reaped).
  tail -c +1 -s 0.2 -f --pid="$qemu_pid" "$share/stdout" &
  tails+=($!)
  tail -c +1 -s 0.2 -f --pid="$qemu_pid" "$share/stderr" >&2 &
  tails+=($!)
  local rc=0
  wait "$qemu_pid" || rc=$?
  qemu_pid=""
  wait "${tails[@]}" || true
  tails=()

  if [[ -s "$share/status" ]]; then
    exit "$(cat "$share/status")"
  elif ((rc == 124 || rc == 137)); then
    if [[ -e "$share/booted" ]]; then
      say "the guest did not finish within ${limit}s"
    else
      say "the guest did not boot within ${limit}s"
    fi
    exit 124
  else
    # The reason: init's own message, a kernel panic, or what qemu said. The
    # whole kernel console is kept beside the share for a closer look.
    local reason log="${share%/*}/dmon-vm-console.log"
    reason="$(grep -h -m 1 -e 'dmon guest init:' -e 'Kernel panic' "$share/console" | sed 's/^\[[^]]*\] *//')" || true
    [[ -n "$reason" ]] || reason="$(tail -n 1 "$share/qemu.log")"
    cp "$share/console" "$log" 2>/dev/null || true
    say "the guest could not boot (qemu exit $rc): ${reason:-no message}; its console is in $log"
    exit 125
  fi
}

# On any exit of run: ends a qemu still running (guest.sh itself was stopped),
# the tails, and removes the share.
finish_run() {
  [[ -n "${qemu_pid:-}" ]] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  ((${#tails[@]})) && kill "${tails[@]}" 2>/dev/null
  rm -rf "$1"
}

case "${1:-}" in
  setup) shift; (($# == 0)) || usage; setup ;;
  run) shift; run "$@" ;;
  *) usage ;;
esac
