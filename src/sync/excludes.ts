/**
 * Which repository paths a sync leaves out, with upstream Crabbox's rule language: an ordered list
 * where the LAST matching rule wins, `!pattern` re-includes, globs are Go `filepath.Match` globs
 * (`*`/`?` never cross `/`, `[...]` classes, no `**`). Every decision carries its reason so
 * `crabbox sync-plan` can say why a file stayed home.
 */

export const BUILTIN_EXCLUDES: readonly string[] = [
  ".git",
  "._*",
  "node_modules",
  ".ignored",
  ".turbo",
  ".next",
  ".vite",
  ".parcel-cache",
  ".rollup.cache",
  "dist",
  "dist-runtime",
  "coverage",
  "playwright-report",
  "test-results",
  ".cache",
  ".tmp",
  ".local",
  ".swiftpm",
  ".build",
  "apps/*/.build",
  ".pnpm-store",
  ".npm",
  ".yarn/cache",
  ".venv",
  "__pycache__",
  ".pytest_cache",
  ".mypy_cache",
  ".ruff_cache",
  ".gradle",
  "target",
];

/**
 * Built-in names that are often real source directories (`dist` of a vendored lib, a Rust crate
 * named `target`): they only exclude files git does not track as regular files.
 */
export const AMBIGUOUS_BUILTIN_EXCLUDES: ReadonlySet<string> = new Set([
  "dist",
  "dist-runtime",
  "coverage",
  "playwright-report",
  "test-results",
  ".build",
  "apps/*/.build",
  "target",
]);

/** crabbox's own local state: never synced, whatever the other rules say. Compared case-insensitively. */
export const PROTECTED_EXCLUDES: readonly string[] = [
  ".crabbox/env",
  ".crabbox/scripts",
  ".crabbox/logs",
  ".crabbox/captures",
  ".crabbox/runs",
];

export const CRABBOXIGNORE = ".crabboxignore";

/** Why a path is not synced. */
export type ExcludeReason =
  | "builtin"
  | "protected"
  | "config"
  | "crabboxignore"
  | "include"
  | "submodule"
  | "nested-repo"
  | "unsafe"
  | "missing"
  | "directory"
  | "special";

export type RuleSource = "builtin" | "config" | "crabboxignore";

interface Rule {
  source: RuleSource;
  /** The pattern as written, for messages. */
  pattern: string;
  /** A slash- and glob-free pattern matches exactly the paths with a segment equal to it. */
  segment: string | undefined;
  negate: boolean;
  ambiguous: boolean;
  matches: (path: string, segments: readonly string[]) => boolean;
}

/** Trimmed, forward slashes, no leading/trailing `/` — the form every pattern is compared in. */
export function normalizePattern(pattern: string): string {
  return pattern.trim().replaceAll("\\", "/").replace(/^\/+/, "").replace(/\/+$/, "");
}

const GLOB_CHARS = /[*?[\\]/;

/**
 * Go's `filepath.Match` as a RegExp, or null for a malformed pattern (which, as in Go, matches
 * nothing). `\` escapes the next character.
 */
export function globToRegExp(pattern: string): RegExp | null {
  let out = "^";
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i] as string;
    if (c === "*") {
      out += "[^/]*";
      i++;
    } else if (c === "?") {
      out += "[^/]";
      i++;
    } else if (c === "\\") {
      const next = pattern[i + 1];
      if (next === undefined) return null;
      out += escapeRegExp(next);
      i += 2;
    } else if (c === "[") {
      const parsed = parseClass(pattern, i + 1);
      if (!parsed) return null;
      out += parsed.regex;
      i = parsed.end;
    } else {
      out += escapeRegExp(c);
      i++;
    }
  }
  try {
    return new RegExp(`${out}$`, "su");
  } catch {
    return null;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** Escaping inside a `[...]` class under the `u` flag, where `-` must be escaped too. */
function escapeClassChar(char: string): string {
  return /[\\\][^-]/.test(char) ? `\\${char}` : char;
}

/** Parses `[^a-z\]]` starting after `[`; returns the regex class and the index after `]`. */
function parseClass(pattern: string, start: number): { regex: string; end: number } | null {
  let i = start;
  let negate = false;
  if (pattern[i] === "^") {
    negate = true;
    i++;
  }
  const readChar = (): string | null => {
    const c = pattern[i];
    if (c === undefined || c === "-" || c === "]") return null;
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next === undefined) return null;
      i += 2;
      return next;
    }
    i++;
    return c;
  };
  let ranges = "";
  let count = 0;
  for (;;) {
    if (pattern[i] === "]" && count > 0) {
      i++;
      break;
    }
    const lo = readChar();
    if (lo === null) return null;
    let hi = lo;
    if (pattern[i] === "-") {
      i++;
      const h = readChar();
      if (h === null) return null;
      hi = h;
    }
    if (hi < lo) return null;
    ranges += lo === hi ? escapeClassChar(lo) : `${escapeClassChar(lo)}-${escapeClassChar(hi)}`;
    count++;
  }
  return { regex: `[${negate ? "^" : ""}${ranges}]`, end: i };
}

/** The directory prefixes of a path and the path itself: `a/b/c` → `a`, `a/b`, `a/b/c`. */
function prefixesOf(segments: readonly string[]): string[] {
  const out: string[] = [];
  let acc = "";
  for (const segment of segments) {
    acc = acc === "" ? segment : `${acc}/${segment}`;
    out.push(acc);
  }
  return out;
}

/**
 * A matcher for one normalised pattern. A path matches when it equals the pattern or lies under it;
 * when a slash-free pattern equals or globs any path segment (so the basename too); or when the
 * pattern globs the whole path or any leading directory of it.
 */
function compileMatcher(pattern: string): (path: string, segments: readonly string[]) => boolean {
  if (pattern === "") return () => false;
  const hasSlash = pattern.includes("/");
  if (!GLOB_CHARS.test(pattern)) {
    // Literal patterns (most of them) need no regex: a segment test or a prefix test.
    if (!hasSlash) return (_path, segments) => segments.includes(pattern);
    const under = `${pattern}/`;
    return (path) => path === pattern || path.startsWith(under);
  }
  const glob = globToRegExp(pattern);
  const under = `${pattern}/`;
  if (!hasSlash) {
    return (path, segments) =>
      path === pattern ||
      path.startsWith(under) ||
      (glob !== null && segments.some((segment) => segment === pattern || glob.test(segment)));
  }
  // `apps/*/.build`: only paths under `apps/` can match, and most paths are not.
  const head = pattern.slice(0, pattern.indexOf("/"));
  const literalHead = GLOB_CHARS.test(head) ? undefined : `${head}/`;
  return (path, segments) =>
    path === pattern ||
    path.startsWith(under) ||
    (glob !== null &&
      (literalHead === undefined || path.startsWith(literalHead)) &&
      prefixesOf(segments).some((prefix) => glob.test(prefix)));
}

function compileRule(raw: string, source: RuleSource): Rule | null {
  let text = raw.trim();
  let negate = false;
  if (text.startsWith("!")) {
    negate = true;
    text = text.slice(1);
  } else if (text.startsWith("\\!")) {
    text = text.slice(1);
  }
  const pattern = normalizePattern(text);
  if (pattern === "") return null;
  return {
    source,
    pattern: raw.trim(),
    segment: pattern.includes("/") || GLOB_CHARS.test(pattern) ? undefined : pattern,
    negate,
    ambiguous: source === "builtin" && AMBIGUOUS_BUILTIN_EXCLUDES.has(pattern),
    matches: compileMatcher(pattern),
  };
}

/** `.crabboxignore` lines: blank lines and `#` comments skipped, the rest trimmed. */
export function parseCrabboxIgnore(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

export interface ExcludeRulesInput {
  /** `sync.exclude` from the resolved config, in order. */
  configExcludes?: readonly string[];
  /** Lines of the repository's `.crabboxignore` (already parsed). */
  crabboxIgnore?: readonly string[];
  /** `sync.include`: when non-empty, only paths at/under (or globbed by) one of these sync. */
  includes?: readonly string[];
}

export type ExcludeDecision =
  | { excluded: false; protectedFrom?: string }
  | { excluded: true; reason: ExcludeReason; pattern?: string };

export interface ExcludeMatcher {
  /**
   * Decides one safe relative path. `trackedRegular` = git tracks it with mode 100644/100755, which
   * shields it from the ambiguous built-in patterns; `protectedFrom` names the pattern it was
   * shielded from, for the one warning line.
   */
  decide(path: string, trackedRegular: boolean): ExcludeDecision;
}

export function compileExcludes(input: ExcludeRulesInput): ExcludeMatcher {
  const rules: Rule[] = [];
  const add = (patterns: readonly string[], source: RuleSource) => {
    for (const pattern of patterns) {
      const rule = compileRule(pattern, source);
      if (rule) rules.push(rule);
    }
  };
  add(BUILTIN_EXCLUDES, "builtin");
  add(input.configExcludes ?? [], "config");
  add(input.crabboxIgnore ?? [], "crabboxignore");
  const protectedPrefixes = PROTECTED_EXCLUDES.map((p) => p.toLowerCase());
  const includes = (input.includes ?? []).map(normalizePattern).filter((p) => p !== "");
  const includeGlobs = includes.map((p) => (GLOB_CHARS.test(p) ? globToRegExp(p) : null));

  // Most rules are plain names (`node_modules`, `dist`): index them by name, so a path is checked
  // against the rules its own segments name plus the few others, not against every rule.
  const bySegment = new Map<string, number[]>();
  const others: number[] = [];
  rules.forEach((rule, index) => {
    if (rule.segment === undefined) others.push(index);
    else bySegment.set(rule.segment, [...(bySegment.get(rule.segment) ?? []), index]);
  });
  /** Indices of the rules that may match, highest first (the order decide walks them in). */
  const candidates = (segments: readonly string[]): number[] => {
    let found: number[] | undefined;
    for (const segment of segments) {
      const hits = bySegment.get(segment);
      if (hits) found = [...(found ?? others), ...hits];
    }
    if (!found) return others;
    return [...new Set(found)].sort((a, b) => a - b);
  };

  const included = (path: string): boolean =>
    includes.length === 0 ||
    includes.some(
      (inc, index) => path === inc || path.startsWith(`${inc}/`) || includeGlobs[index]?.test(path) === true,
    );

  return {
    decide(path, trackedRegular) {
      const lower = path.toLowerCase();
      for (const prefix of protectedPrefixes) {
        if (lower === prefix || lower.startsWith(`${prefix}/`)) {
          return { excluded: true, reason: "protected", pattern: prefix };
        }
      }
      const segments = path.split("/");
      let shieldedBy: string | undefined;
      const indices = candidates(segments);
      for (let c = indices.length - 1; c >= 0; c--) {
        const rule = rules[indices[c] as number] as Rule;
        if (!rule.matches(path, segments)) continue;
        if (rule.ambiguous && trackedRegular && !rule.negate) {
          shieldedBy ??= rule.pattern;
          continue;
        }
        if (rule.negate) break;
        return { excluded: true, reason: rule.source, pattern: rule.pattern };
      }
      if (!included(path)) return { excluded: true, reason: "include" };
      return shieldedBy === undefined ? { excluded: false } : { excluded: false, protectedFrom: shieldedBy };
    },
  };
}
