import type { ArgsDef, CommandDef } from "citty";

export type LazyCommand = () => Promise<CommandDef<ArgsDef>>;

// biome-ignore lint/suspicious/noExplicitAny: citty's CommandDef is invariant in its args type; the table holds every command.
const load = (module: Promise<{ default: CommandDef<any> }>) =>
  module.then((m) => m.default as CommandDef<ArgsDef>);

/**
 * Every command, loaded on first use so `crabbox --help` never parses the AWS SDK.
 * Order is the order `crabbox --help` lists them in. It lives outside src/cli.ts so commands can
 * read it (`crabbox completion`): cli.ts awaits main() at its top level, so importing it from a
 * command it is running would wait for itself.
 */
export const commands: Record<string, LazyCommand> = {
  run: () => load(import("./run.ts")),
  "sync-plan": () => load(import("./sync-plan.ts")),
  warmup: () => load(import("./warmup.ts")),
  status: () => load(import("./status.ts")),
  list: () => load(import("./list.ts")),
  stop: () => load(import("./stop.ts")),
  pause: () => load(import("./pause.ts")),
  resume: () => load(import("./resume.ts")),
  cleanup: () => load(import("./cleanup.ts")),
  doctor: () => load(import("./doctor.ts")),
  config: () => load(import("./config.ts")),
  emulator: () => load(import("./emulator.ts")),
  image: () => load(import("./image.ts")),
  completion: () => load(import("./completion.ts")),
  version: () => load(import("./version.ts")),
};
