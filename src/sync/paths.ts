/**
 * Order of relative paths by their UTF-8 bytes — the order the fingerprint, the runner and the tar
 * stream use. JS string comparison orders UTF-16 code units, which disagrees with UTF-8 only when a
 * surrogate (astral character) meets a character at or above U+E000.
 */
export function comparePathBytes(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** The first segment of a relative path, or `.` for a file at the root — how sizes are grouped. */
export function topDir(path: string): string {
  const slash = path.indexOf("/");
  return slash === -1 ? "." : path.slice(0, slash);
}

/**
 * Index lookup in a list of paths that is asked in (nearly) the list's own order — a manifest
 * walking the last run's files. A cursor answers the common case without hashing anything; the
 * first path it cannot answer builds a Map, and the cursor resumes after the path found.
 */
export function sequentialIndex(paths: readonly string[]): (path: string) => number | undefined {
  let cursor = 0;
  let byPath: Map<string, number> | undefined;
  return (path) => {
    if (paths[cursor] === path) return cursor++;
    if (!byPath) {
      byPath = new Map();
      for (let i = 0; i < paths.length; i++) byPath.set(paths[i] as string, i);
    }
    const index = byPath.get(path);
    if (index !== undefined) cursor = index + 1;
    return index;
  };
}
