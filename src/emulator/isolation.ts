/**
 * How a MicroVM's runner is confined. `bwrap` and `ns` give the VM its own pid namespace, a private
 * /tmp, no view of the host's home or checkout, and its workdir at the real in-VM path
 * (/workspace); `none` is a plain process whose runner maps in-VM paths under `--root`. The network
 * stays shared in every mode: the default INTERNET_EGRESS connector gives real VMs egress too, and
 * the emulator reaches the runner over a unix socket either way.
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readlinkSync } from "node:fs";

export type IsolationMode = "none" | "ns" | "bwrap";
export type IsolationRequest = IsolationMode | "auto";

/** Host directories that form the VM's operating system, mounted read-only. */
const systemDirs = ["usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

function works(argv: string[]): boolean {
  const result = spawnSync(argv[0] as string, argv.slice(1), { stdio: "ignore", timeout: 10_000 });
  return result.status === 0;
}

const bwrapProbe = [
  "bwrap",
  "--unshare-all",
  "--share-net",
  "--die-with-parent",
  "--ro-bind",
  "/",
  "/",
  "true",
];
const nsProbe = [
  "unshare",
  "--user",
  "--map-root-user",
  "--mount",
  "--pid",
  "--fork",
  "--mount-proc",
  "true",
];

/**
 * The isolation actually used. `auto` tries bwrap, then namespaces, then none (with a warning the
 * caller prints); an explicit mode that does not work here is an error, never silently weaker.
 */
export function resolveIsolation(requested: IsolationRequest): { mode: IsolationMode; warning?: string } {
  if (requested === "none") return { mode: "none" };
  const linux = process.platform === "linux";
  if (requested === "bwrap" || requested === "auto") {
    if (linux && works(bwrapProbe)) return { mode: "bwrap" };
    if (requested === "bwrap")
      throw new Error("bubblewrap (bwrap) is not installed or cannot create namespaces here");
  }
  if (linux && works(nsProbe)) return { mode: "ns" };
  if (requested === "ns") throw new Error("unshare cannot create user+mount+pid namespaces here");
  return {
    mode: "none",
    warning: "no bwrap or user namespaces here: MicroVMs run as plain processes (--isolation none)",
  };
}

export interface SandboxSpec {
  /** The runner's argv as it runs inside the VM. */
  argv: string[];
  /** Host directory that becomes /workspace inside the VM. */
  workspace: string;
  /** Host paths the VM needs at the same path, read-only (runner binary, image files). */
  readOnly: string[];
  /** Host paths the VM needs at the same path, writable (the runner socket directory). */
  writable: string[];
  /** Empty host directory the `ns` mode mounts its new root on. */
  nsRoot: string;
}

/** Paths already visible through the read-only system directories need (and allow) no bind. */
function needsBind(path: string): boolean {
  return !systemDirs.some((dir) => path === `/${dir}` || path.startsWith(`/${dir}/`));
}

/** The full argv that starts `spec.argv` confined by `mode`. */
export function sandboxArgv(mode: IsolationMode, input: SandboxSpec): string[] {
  if (mode === "none") return input.argv;
  const spec = {
    ...input,
    readOnly: input.readOnly.filter(needsBind),
    writable: input.writable.filter(needsBind),
  };
  if (mode === "bwrap") return [...bwrapArgs(spec), "--", ...spec.argv];
  return [
    "unshare",
    "--user",
    "--map-root-user",
    "--mount",
    "--pid",
    "--fork",
    "--mount-proc",
    "--kill-child",
    "sh",
    "-c",
    nsScript,
    "crabbox-vm",
    spec.nsRoot,
    spec.workspace,
    String(spec.readOnly.length),
    ...spec.readOnly,
    String(spec.writable.length),
    ...spec.writable,
    ...spec.argv,
  ];
}

function bwrapArgs(spec: SandboxSpec): string[] {
  const args = ["bwrap", "--unshare-all", "--share-net", "--die-with-parent"];
  for (const dir of systemDirs) {
    const path = `/${dir}`;
    const stat = lstatSync(path, { throwIfNoEntry: false });
    if (!stat) continue;
    if (stat.isSymbolicLink()) args.push("--symlink", readlinkSync(path), path);
    else if (stat.isDirectory()) args.push("--ro-bind", path, path);
  }
  args.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/root");
  args.push("--bind", spec.workspace, "/workspace");
  for (const path of spec.readOnly) if (existsSync(path)) args.push("--ro-bind", path, path);
  for (const path of spec.writable) args.push("--bind", path, path);
  args.push("--chdir", "/workspace");
  return args;
}

/**
 * The `ns` mode's setup, run as root of a fresh user+mount+pid namespace: a tmpfs root holding
 * read-only binds of the system directories, /proc of the new pid namespace, a private /tmp, the
 * workspace at /workspace and the listed binds at their host paths; then chroot into it.
 * Arguments: root workspace nRO ro... nRW rw... argv...
 */
const nsScript = `set -eu
R=$1; W=$2; shift 2
mount -t tmpfs -o mode=0755 tmpfs "$R"
for d in ${systemDirs.join(" ")}; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$R/$d"
  elif [ -d "/$d" ]; then mkdir "$R/$d"; mount --rbind "/$d" "$R/$d"; mount -o remount,bind,ro "$R/$d" 2>/dev/null || true
  fi
done
mkdir -p "$R/proc" "$R/dev" "$R/tmp" "$R/root" "$R/workspace"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount --bind "$W" "$R/workspace"
bind() {
  if [ -d "$1" ]; then mkdir -p "$R$1"; else mkdir -p "$R$(dirname "$1")"; : > "$R$1"; fi
  mount --bind "$1" "$R$1"
}
n=$1; shift
while [ "$n" -gt 0 ]; do
  if [ -e "$1" ]; then bind "$1"; mount -o remount,bind,ro "$R$1" 2>/dev/null || true; fi
  n=$((n - 1)); shift
done
n=$1; shift
while [ "$n" -gt 0 ]; do bind "$1"; n=$((n - 1)); shift; done
CHROOT=$(PATH=/usr/sbin:/sbin:/usr/bin:/bin command -v chroot)
cd "$R/workspace"
exec "$CHROOT" "$R" sh -c 'cd /workspace && exec "$@"' crabbox-vm "$@"
`;
