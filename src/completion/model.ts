import type { ArgsDef, CommandDef, CommandMeta } from "citty";

/**
 * What shell completion knows about crabbox, read from the command table itself (every command's
 * citty args and subcommands), so a new flag is completable the moment it exists. The three shell
 * scripts are rendered from this one model.
 */

export interface CompletionFlag {
  /** Without dashes. */
  name: string;
  description: string;
  takesValue: boolean;
  /** Fixed candidates for the value, when known. */
  values?: readonly string[];
  /** The value is a path: complete file names. */
  file?: boolean;
}

export interface CompletionCommand {
  name: string;
  description: string;
  flags: CompletionFlag[];
  subcommands: CompletionCommand[];
  /** Words after the flags are a remote command (`run`): complete commands/files there. */
  passthrough?: boolean;
}

/** Regions where Lambda MicroVMs run (reference: launch regions). */
const REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "ap-northeast-1"] as const;

/** Values crabbox accepts for some string flags, where citty has no enum for them. */
const KNOWN_VALUES: Record<string, readonly string[]> = {
  provider: ["aws-lambda-microvm"],
  "aws-lambda-microvm-region": REGIONS,
  arch: ["arm64"],
  isolation: ["auto", "none", "ns", "bwrap"],
  memory: ["512", "1024", "2048", "4096", "8192"],
};
const FILE_HINTS = new Set(["path", "file", "zip", "dir"]);
const FILE_FLAGS = new Set(["artifact", "state-dir", "log-json"]);

type Loader = () => Promise<CommandDef<ArgsDef>>;
type Resolvable<T> = T | Promise<T> | (() => T | Promise<T>);

async function resolveValue<T>(value: Resolvable<T>): Promise<T> {
  return typeof value === "function" ? await (value as () => T | Promise<T>)() : await value;
}

function flagsOf(args: ArgsDef): CompletionFlag[] {
  const flags: CompletionFlag[] = [];
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    const takesValue = def.type !== "boolean";
    const hint = "valueHint" in def ? def.valueHint : undefined;
    const options = def.type === "enum" && "options" in def ? (def.options as string[]) : undefined;
    const values = options ?? KNOWN_VALUES[name];
    flags.push({
      name,
      description: (def.description ?? "").split("\n")[0] ?? "",
      takesValue,
      ...(takesValue && values ? { values } : {}),
      ...(takesValue && (FILE_FLAGS.has(name) || (hint && FILE_HINTS.has(hint))) ? { file: true } : {}),
    });
  }
  flags.push({ name: "help", description: "show help", takesValue: false });
  return flags.sort((a, b) => a.name.localeCompare(b.name));
}

async function describe(name: string, command: CommandDef<ArgsDef>): Promise<CompletionCommand | undefined> {
  const meta = (await resolveValue(command.meta as Resolvable<CommandMeta | undefined>)) ?? {};
  if (meta.hidden) return undefined;
  const args = ((await resolveValue(command.args as Resolvable<ArgsDef | undefined>)) ?? {}) as ArgsDef;
  const subs =
    (await resolveValue(
      command.subCommands as Resolvable<Record<string, Resolvable<CommandDef<ArgsDef>>> | undefined>,
    )) ?? {};
  const subcommands: CompletionCommand[] = [];
  for (const [subName, sub] of Object.entries(subs)) {
    const described = await describe(subName, await resolveValue(sub));
    if (described) subcommands.push(described);
  }
  return {
    name,
    description: (meta.description ?? "").split("\n")[0] ?? "",
    flags: flagsOf(args),
    subcommands,
    ...(name === "run" ? { passthrough: true } : {}),
  };
}

/** The root: every visible command of the table, in table order. */
export async function completionModel(table: Record<string, Loader>): Promise<CompletionCommand> {
  const subcommands: CompletionCommand[] = [];
  for (const [name, loader] of Object.entries(table)) {
    const described = await describe(name, await loader());
    if (described) subcommands.push(described);
  }
  return {
    name: "crabbox",
    description: "run a local git checkout's commands inside an AWS Lambda MicroVM",
    flags: [
      { name: "help", description: "show help", takesValue: false },
      { name: "version", description: "print the version", takesValue: false },
      { name: "debug", description: "show stack traces and debug lines", takesValue: false },
    ],
    subcommands,
  };
}

/** Every command with its space-joined path ("" for the root), depth first. */
export function commandPaths(root: CompletionCommand): [string, CompletionCommand][] {
  const out: [string, CompletionCommand][] = [];
  const walk = (path: string, command: CompletionCommand) => {
    out.push([path, command]);
    for (const sub of command.subcommands) walk(path ? `${path} ${sub.name}` : sub.name, sub);
  };
  walk("", root);
  return out;
}

/** Distinct value-taking flags across all commands (values are the same wherever a flag appears). */
export function valuedFlags(root: CompletionCommand): CompletionFlag[] {
  const seen = new Map<string, CompletionFlag>();
  for (const [, command] of commandPaths(root)) {
    for (const flag of command.flags) if (flag.takesValue && !seen.has(flag.name)) seen.set(flag.name, flag);
  }
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name));
}
