/**
 * Turning argv into text a POSIX shell reads back as the same words. The runner executes the
 * script with /bin/sh (dash on most images), so only POSIX quoting is used: single quotes, with
 * each embedded quote written as '\''.
 */

/** Words a user types as shell syntax (`crabbox run -- make && make test`), emitted unquoted. */
const OPERATORS = new Set(["&&", "||", ";", "|", ">", ">>", "<", "2>", "2>>"]);
/** Operators after which the next word starts a new command (where `NAME=value` is an assignment). */
const COMMAND_SEPARATORS = new Set(["&&", "||", ";", "|"]);
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s;
const DISPLAY_SAFE = /^[A-Za-z0-9_./:@=-]+$/;

/** Always single-quotes: `it's` → `'it'\''s'`, `` → `''`. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * The remote script for `crabbox run -- <argv…>` (without `--shell`), as upstream renders it:
 * operators stay raw so `a && b` keeps working, `NAME=value` at command position stays an
 * assignment (`NAME='value'`), every other word is quoted. `printf runner-ok` → `'printf' 'runner-ok'`.
 */
export function argvToShellScript(argv: readonly string[]): string {
  const out: string[] = [];
  let commandPosition = true;
  for (const word of argv) {
    if (OPERATORS.has(word)) {
      out.push(word);
      if (COMMAND_SEPARATORS.has(word)) commandPosition = true;
      continue;
    }
    const assignment = commandPosition ? ASSIGNMENT.exec(word) : null;
    if (assignment) {
      out.push(`${assignment[1]}=${shellQuote(assignment[2] ?? "")}`);
      continue;
    }
    commandPosition = false;
    out.push(shellQuote(word));
  }
  return out.join(" ");
}

/** A word for a line a human copies into a terminal: bare when obviously safe, quoted otherwise. */
export function displayShellArg(word: string): string {
  return DISPLAY_SAFE.test(word) ? word : shellQuote(word);
}

/** A whole command line for display, e.g. in `crabbox stop cbx_… ` hints. */
export function displayCommand(argv: readonly string[]): string {
  return argv.map(displayShellArg).join(" ");
}
