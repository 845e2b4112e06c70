/**
 * Output is a product surface: remote stdout is the user's and goes to stdout untouched; machine
 * JSON (--json) goes to stdout; every line crabbox says about itself goes to stderr.
 */
export const plainOutput: boolean =
  !process.stderr.isTTY || Boolean(process.env.CI) || process.env.NO_COLOR !== undefined;

/**
 * consola, loaded on first use: importing it eagerly costs every command ~50 ms of startup.
 * Both of its streams are stderr, because stdout belongs to the remote command and to --json.
 */
export async function logger() {
  const { createConsola } = await import("consola");
  return createConsola({
    stdout: process.stderr,
    stderr: process.stderr,
    formatOptions: { date: false, colors: !plainOutput },
  });
}

/** A human line on stderr, exactly as given. */
export function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function warn(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}

/** Machine-readable output: one pretty JSON document on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function debugEnabled(): boolean {
  const flag = process.env.CRABBOX_DEBUG;
  return flag === "1" || flag === "true";
}

export function debug(message: string): void {
  if (debugEnabled()) process.stderr.write(`debug: ${message}\n`);
}
