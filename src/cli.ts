#!/usr/bin/env bun
import type { ArgsDef, CommandDef } from "citty";
import { commands } from "./commands/_table.ts";
import { assertKnownFlags, splitArgv, wantsHelp } from "./core/argv.ts";
import { CrabboxError, describeError, ExitCode, usageError } from "./core/errors.ts";
import { closest } from "./core/suggest.ts";

export type { LazyCommand } from "./commands/_table.ts";
export { commands };

const aliases: Record<string, string> = { release: "stop" };

/** Commands whose trailing words are a remote command, never parsed by crabbox. */
const passthroughCommands = new Set(["run"]);

export interface CommandData {
  /** The remote command words for passthrough commands (`run`), untouched. */
  rest: string[];
}

async function rootUsage(): Promise<string> {
  const { version } = await import("./core/version.ts");
  const lines = [
    `crabbox ${version} — run a local git checkout's commands inside an AWS Lambda MicroVM`,
    "",
    "USAGE  crabbox <command> [flags] [-- remote command]",
    "",
    "COMMANDS",
  ];
  const descriptions = await Promise.all(
    Object.entries(commands).map(async ([name, loader]) => {
      const command = await loader();
      const meta = typeof command.meta === "function" ? await command.meta() : await command.meta;
      const summary = meta?.description?.split("\n")[0] ?? "";
      return meta?.hidden ? undefined : `  ${name.padEnd(10)} ${summary}`;
    }),
  );
  lines.push(...descriptions.filter((line): line is string => line !== undefined));
  lines.push(
    "",
    "GLOBAL FLAGS",
    "  --help, -h     show help for crabbox or a command",
    "  --version      print the version",
    "  --debug        show stack traces and debug lines (also CRABBOX_DEBUG=1)",
    "",
    "Use `crabbox <command> --help` for a command's flags and examples.",
  );
  return lines.join("\n");
}

/**
 * citty's usage with the description's first line as the summary; the rest of the description
 * (the examples) follows the option list, where a reader looks for it.
 */
async function commandUsage(
  command: CommandDef<ArgsDef>,
  parent: CommandDef<ArgsDef> | undefined,
): Promise<string> {
  const { renderUsage } = await import("citty");
  const meta = (typeof command.meta === "function" ? await command.meta() : await command.meta) ?? {};
  const [summary = "", ...more] = (meta.description ?? "").split("\n");
  const usage = await renderUsage({ ...command, meta: { ...meta, description: summary } }, parent);
  const details = more.join("\n").trim();
  return details ? `${usage}\n\n${details}\n` : usage;
}

async function resolveCommand(
  path: string[],
  command: CommandDef<ArgsDef>,
  tokens: string[],
): Promise<{ path: string[]; command: CommandDef<ArgsDef>; tokens: string[] }> {
  const subCommands =
    typeof command.subCommands === "function" ? await command.subCommands() : await command.subCommands;
  if (!subCommands || Object.keys(subCommands).length === 0) return { path, command, tokens };
  const [name, ...rest] = tokens;
  if (name === undefined || name.startsWith("-")) return { path, command, tokens };
  const entry = subCommands[name];
  if (!entry) {
    const guess = closest(name, Object.keys(subCommands));
    throw usageError(
      `unknown command 'crabbox ${[...path, name].join(" ")}'`,
      guess ? `did you mean 'crabbox ${[...path, guess].join(" ")}'?` : `crabbox ${path.join(" ")} --help`,
    );
  }
  const sub = (typeof entry === "function" ? await entry() : await entry) as CommandDef<ArgsDef>;
  return resolveCommand([...path, name], sub, rest);
}

async function dispatch(argv: string[]): Promise<number> {
  const [first, ...tail] = argv;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    process.stdout.write(`${await rootUsage()}\n`);
    return first === undefined ? ExitCode.usage : ExitCode.ok;
  }
  if (first === "--version" || first === "-v") {
    const { version, commit } = await import("./core/version.ts");
    process.stdout.write(`crabbox ${version} (${commit})\n`);
    return ExitCode.ok;
  }
  if (first === "__runner") {
    // Hidden mode: the emulator starts this same binary as the in-MicroVM runner.
    const { main } = await import("../runner/main.ts");
    return main(tail);
  }
  const name = aliases[first] ?? first;
  const loader = commands[name];
  if (!loader) {
    const guess = closest(first, [...Object.keys(commands), ...Object.keys(aliases)]);
    throw usageError(
      first.startsWith("-") ? `unknown flag ${first}` : `unknown command '${first}'`,
      guess
        ? `did you mean 'crabbox ${guess}'? (crabbox --help lists commands)`
        : "crabbox --help lists commands",
    );
  }
  const resolved = await resolveCommand([name], await loader(), tail);
  const args =
    (typeof resolved.command.args === "function"
      ? await resolved.command.args()
      : await resolved.command.args) ?? {};
  const split = splitArgv(resolved.tokens, args, passthroughCommands.has(name));
  const own = takeDebug(split.own);
  const rest = split.rest;
  if (wantsHelp(own)) {
    process.stdout.write(
      `${await commandUsage(resolved.command, resolved.path.length > 1 ? await loader() : undefined)}\n`,
    );
    return ExitCode.ok;
  }
  assertKnownFlags(own, args, resolved.path.join(" "));
  const { runCommand } = await import("citty");
  const data: CommandData = { rest };
  const { result } = await runCommand(resolved.command, { rawArgs: own, data });
  return typeof result === "number" ? result : ExitCode.ok;
}

/** The one error funnel: every failure becomes `error:`/`hint:` lines and a documented exit code. */
function report(error: unknown, debug: boolean): number {
  if (error instanceof CrabboxError) {
    process.stderr.write(`error: ${error.message}\n`);
    if (error.hint) process.stderr.write(`hint: ${error.hint}\n`);
    if (debug && error.stack) process.stderr.write(`${error.stack}\n`);
    return error.exitCode;
  }
  // citty reports bad positional/enum/required arguments with its own CLIError: a usage error.
  if (error instanceof Error && error.name === "CLIError") {
    process.stderr.write(`error: ${error.message}\nhint: add --help for usage\n`);
    return ExitCode.usage;
  }
  process.stderr.write(`error: ${describeError(error)}\n`);
  if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  else process.stderr.write(`hint: ${diskHint(error) ?? "rerun with --debug for details"}\n`);
  return ExitCode.generic;
}

/** A full disk is the machine's problem, not a crabbox bug: say what to do instead of "--debug". */
function diskHint(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== "ENOSPC" && code !== "EDQUOT") return undefined;
  return "the disk is full: free some space and retry; `crabbox list` and `crabbox stop` still work, and `crabbox cleanup` finds anything a failed run left";
}

export async function main(argv: string[]): Promise<number> {
  // `crabbox --debug <command> …`: a leading --debug is crabbox's; dispatch handles the rest.
  let rest = argv;
  while (rest[0] === "--debug") {
    process.env.CRABBOX_DEBUG = "1";
    rest = rest.slice(1);
  }
  try {
    return await dispatch(rest);
  } catch (error) {
    return report(error, process.env.CRABBOX_DEBUG === "1");
  }
}

/**
 * Takes `--debug` out of crabbox's own tokens. Only these count: for `run`, a `--debug` in the
 * remote command (after `--`, or after the first command word) belongs to that command.
 */
function takeDebug(own: string[]): string[] {
  const end = own.indexOf("--") === -1 ? own.length : own.indexOf("--");
  const kept = own.filter((token, index) => token !== "--debug" || index >= end);
  if (kept.length !== own.length) process.env.CRABBOX_DEBUG = "1";
  return kept;
}

// No top-level await: the binary is a CommonJS bundle (scripts/build.ts says why).
if (import.meta.main) {
  void main(process.argv.slice(2)).then((code) => {
    // Exit once stdout has drained: a stray keep-alive socket must never hold a finished CLI open,
    // and a piped consumer must still get every byte written before the exit.
    process.stdout.write("", () => process.exit(code));
  });
}
