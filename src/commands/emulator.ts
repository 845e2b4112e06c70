import { defineCommand } from "citty";
import { CrabboxError, usageError } from "../core/errors.ts";

const isolations = ["auto", "none", "ns", "bwrap"] as const;

/** Every `--fault SPEC` / `--fault=SPEC`: the flag repeats, and citty keeps only one value. */
function faultSpecs(rawArgs: string[]): string[] {
  const specs: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const token = rawArgs[i] as string;
    if (token === "--fault" && i + 1 < rawArgs.length) specs.push(rawArgs[++i] as string);
    else if (token.startsWith("--fault=")) specs.push(token.slice("--fault=".length));
  }
  return specs;
}

function number(value: string, flag: string, test: (n: number) => boolean): number {
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || !test(parsed)) {
    throw usageError(`--${flag} ${value} is not valid`, `crabbox emulator --help`);
  }
  return parsed;
}

export default defineCommand({
  meta: {
    name: "emulator",
    description: "run a local AWS Lambda MicroVMs emulator (the real AWS SDK talks to it)",
  },
  args: {
    host: { type: "string", description: "address to listen on (non-loopback warns)", default: "127.0.0.1" },
    port: { type: "string", description: "port to listen on; 0 picks a free one", default: "4599" },
    "state-dir": { type: "string", description: "emulator state (default <crabbox state dir>/emulator)" },
    isolation: {
      type: "string",
      description: "how MicroVMs are confined: auto (bwrap, then namespaces, then none), none, ns, bwrap",
      default: "auto",
    },
    "time-scale": {
      type: "string",
      description: "multiply idle, suspended, max-duration, hook and boot durations, e.g. 0.01",
      default: "1",
    },
    "max-vms": { type: "string", description: "concurrent MicroVM quota (402 beyond it)", default: "50" },
    fault: {
      type: "string",
      description:
        "inject a fault, repeatable: <fault>[@<operation>|@/path][,count=N|,rate=R] (docs/emulator.md)",
      valueHint: "spec",
    },
    "log-json": { type: "string", description: "append one JSON object per request to this file" },
    "test-api": {
      type: "boolean",
      description: "enable /_emulator/* test endpoints and the runner's test echo",
    },
  },
  async run({ args, rawArgs }) {
    if (typeof Bun === "undefined") {
      throw new CrabboxError("crabbox emulator needs Bun", {
        hint: "run the compiled crabbox binary, or `bun src/cli.ts emulator` from a checkout",
      });
    }
    const isolation = args.isolation as (typeof isolations)[number];
    if (!isolations.includes(isolation)) {
      throw usageError(`--isolation ${args.isolation} is not one of ${isolations.join(", ")}`);
    }
    const port = number(args.port, "port", (n) => Number.isInteger(n) && n >= 0 && n <= 65535);
    const timeScale = number(args["time-scale"], "time-scale", (n) => n > 0 && n <= 1000);
    const maxVms = number(args["max-vms"], "max-vms", (n) => Number.isInteger(n) && n >= 0);
    const faults = faultSpecs(rawArgs);
    const { FaultSet, FaultSpecError } = await import("../emulator/faults.ts");
    try {
      new FaultSet(faults);
    } catch (error) {
      if (error instanceof FaultSpecError)
        throw usageError(`--fault: ${error.message}`, "see docs/emulator.md");
      throw error;
    }
    const { resolve } = await import("node:path");
    const { stateDir } = await import("../core/paths.ts");
    const { resolveIsolation } = await import("../emulator/isolation.ts");
    const { warn } = await import("../core/output.ts");
    let resolved: ReturnType<typeof resolveIsolation>;
    try {
      resolved = resolveIsolation(isolation);
    } catch (error) {
      throw new CrabboxError(`--isolation ${isolation}: ${(error as Error).message}`, {
        hint: "use --isolation auto or none",
      });
    }
    if (resolved.warning) warn(resolved.warning);
    if (!isLoopback(args.host)) {
      warn(`listening on ${args.host}: anyone who can reach it can run processes on this machine as you`);
    }

    const { startEmulator } = await import("../emulator/server.ts");
    let emulator: Awaited<ReturnType<typeof startEmulator>>;
    try {
      emulator = await startEmulator({
        host: args.host,
        port,
        stateDir: resolve(args["state-dir"] ?? `${stateDir()}/emulator`),
        isolation: resolved.mode,
        timeScale,
        maxVms,
        faults,
        logJson: args["log-json"] ? resolve(args["log-json"]) : undefined,
        testApi: Boolean(args["test-api"]),
      });
    } catch (error) {
      throw new CrabboxError(`the emulator could not start: ${(error as Error).message}`);
    }
    // Handlers first: a test may send SIGINT the moment it reads the listening line, and Bun
    // installs signal handlers asynchronously.
    const stopped = new Promise<void>((done) => {
      const onSignal = (signal: NodeJS.Signals) => {
        process.stderr.write(`${signal}: terminating every MicroVM\n`);
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        // A second signal while shutting down ends at once; runners still die with our stdin pipes.
        process.once("SIGINT", () => process.exit(130));
        process.once("SIGTERM", () => process.exit(143));
        void emulator.stop().then(done, done);
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    });
    await new Promise((tick) => setTimeout(tick, 0));
    const region = supportedRegion(process.env.AWS_REGION);
    process.stdout.write(
      [
        `crabbox emulator listening on ${emulator.url}`,
        `export AWS_ENDPOINT_URL_LAMBDA_MICROVMS=${emulator.url}`,
        `export AWS_ENDPOINT_URL_S3=${emulator.url}`,
        `export AWS_REGION=${region}`,
        "",
      ].join("\n"),
    );
    process.stderr.write(`isolation: ${resolved.mode}; state: ${emulator.emulator.paths.root}\n`);
    await stopped;
    return 0;
  },
});

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function supportedRegion(region: string | undefined): string {
  const supported = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "ap-northeast-1"];
  return region && supported.includes(region) ? region : "us-east-1";
}
