/**
 * Path rules of protocol v1, shared by the CLI (which must never build a request the runner refuses)
 * and the runner (which must refuse anything that could escape a workdir). Rules are strict on
 * purpose: a path is accepted only in its one canonical spelling, so two spellings can never name the
 * same file and slip past a check.
 */

/** Why a synced/requested relative path is unsafe, or undefined when it is fine. */
export function relativePathProblem(path: string): string | undefined {
  if (path.length === 0) return "empty path";
  if (path.includes("\0")) return "path contains NUL";
  if (path.startsWith("/")) return "absolute path";
  if (longerThanUtf8(path, 4096)) return "path longer than 4096 bytes";
  for (const segment of path.split("/")) {
    if (segment === "..") return "path contains '..'";
    if (segment === "" || segment === ".") return "path is not in canonical form (empty or '.' segment)";
    if (longerThanUtf8(segment, 255)) return "path segment longer than 255 bytes";
  }
  return undefined;
}

/**
 * Whether the UTF-8 encoding of `text` exceeds `limit` bytes, without encoding it: a UTF-16 code
 * unit is 1 to 3 bytes (a surrogate pair 4 for 2 units), so nearly every path is decided by its
 * length alone.
 */
function longerThanUtf8(text: string, limit: number): boolean {
  if (text.length * 3 <= limit) return false;
  if (text.length > limit) return true;
  return countUtf8(text) > limit;
}

function countUtf8(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

export function isSafeRelativePath(path: string): boolean {
  return relativePathProblem(path) === undefined;
}

/** `cwd` of an exec: the same rules as entries, plus `.` for the workdir itself. */
export function cwdProblem(cwd: string): string | undefined {
  return cwd === "." ? undefined : relativePathProblem(cwd);
}

/**
 * Workdirs that would let a sync or `clean` wipe the system. A workdir must be below one of these or
 * elsewhere entirely, never equal to one. The CLI refuses them at config validation (upstream's
 * list, /work and /workspace included) and the runner refuses them again at every request.
 */
export const TOO_BROAD_WORKDIRS: ReadonlySet<string> = new Set([
  "/",
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/home",
  "/lib",
  "/lib64",
  "/media",
  "/mnt",
  "/opt",
  "/proc",
  "/root",
  "/run",
  "/sbin",
  "/srv",
  "/sys",
  "/tmp",
  "/usr",
  "/var",
  "/var/lib",
  "/var/tmp",
  "/work",
  "/workspace",
]);

/** Kernel filesystems: never a workdir, not even below them. */
const FORBIDDEN_TREES = ["/proc", "/sys", "/dev"];

/** Why a workdir is unacceptable, or undefined when it is a clean absolute path that is not too broad. */
export function workdirProblem(workdir: string): string | undefined {
  if (workdir.length === 0) return "workdir is required";
  if (workdir.includes("\0")) return "workdir contains NUL";
  if (!workdir.startsWith("/")) return "workdir must be a clean absolute path";
  if (workdir !== "/" && relativePathProblem(workdir.slice(1)) !== undefined) {
    return "workdir must be a clean absolute path";
  }
  if (TOO_BROAD_WORKDIRS.has(workdir)) return `workdir ${workdir} is too broad`;
  if (FORBIDDEN_TREES.some((tree) => workdir.startsWith(`${tree}/`))) {
    return `workdir ${workdir} is inside a kernel filesystem`;
  }
  return undefined;
}

/** True when `path` is `dir` or below it (both clean absolute paths). */
export function isWithin(dir: string, path: string): boolean {
  return path === dir || path.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
}
