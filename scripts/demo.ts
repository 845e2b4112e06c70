/**
 * `npm run demo`: crabbox end to end on this machine, no AWS account needed. Builds dist/crabbox,
 * starts the local Lambda MicroVMs emulator, and then, on THIS repository:
 *
 *   crabbox doctor                              credentials (emulator mode), ListMicrovms, claims
 *   crabbox run -- sh -c '…'                    one-shot MicroVM; the output proves the checkout synced
 *   crabbox warmup --slug demo                  a retained lease
 *   crabbox run --id demo -- …                  reuse it (warm, no new MicroVM)
 *   crabbox status demo / crabbox list
 *   crabbox stop demo
 *
 * Everything it starts is stopped — on success, on failure and on Ctrl-C — and it never touches
 * your crabbox config or leases: config, state and tokens live in a temp dir that is removed.
 *
 *   bun scripts/demo.ts [--no-build]
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "./bun-runtime.ts";

const binary = join(repoRoot, "dist", "crabbox");
const region = "eu-west-1";
const image = `arn:aws:lambda:${region}:000000000000:microvm-image:crabbox-runner`;
const slug = "demo";
/** Files whose hashes the remote side must reproduce: proof that the checkout arrived intact. */
const proofFiles = ["package.json", "src/cli.ts", "runner/main.ts"];

const color = process.stdout.isTTY && !process.env.NO_COLOR && !process.env.CI;
const bold = (text: string) => (color ? `\x1b[1m${text}\x1b[0m` : text);
const say = (text: string) => process.stdout.write(`${text}\n`);

let interrupted = false;
let current: ChildProcess | undefined;
/** The retained lease exists: stop it whatever happens next. */
let leaseCreated = false;

class DemoError extends Error {}

function build(): void {
  say(bold("▶ building dist/crabbox"));
  const result = spawnSync(process.execPath, ["scripts/build.ts"], { cwd: repoRoot, stdio: "inherit" });
  if (result.status !== 0) throw new DemoError("the build failed");
}

/** The environment every crabbox command gets: nothing of the user's crabbox or AWS setup leaks in. */
function demoEnv(dir: string, endpoint: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key.startsWith("CRABBOX_") || key.startsWith("AWS_")) continue;
    env[key] = value;
  }
  Object.assign(env, {
    XDG_CONFIG_HOME: join(dir, "config"),
    XDG_STATE_HOME: join(dir, "state"),
    XDG_RUNTIME_DIR: join(dir, "run"),
    AWS_REGION: region,
    CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: image,
  });
  if (endpoint) env.CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT = endpoint;
  return env;
}

interface Emulator {
  child: ChildProcess;
  url: string;
}

function startEmulator(dir: string): Promise<Emulator> {
  say(
    bold("▶ crabbox emulator --port 0") +
      "   (a local Lambda MicroVMs endpoint; the real AWS SDK talks to it)",
  );
  const child = spawn(binary, ["emulator", "--port", "0", "--state-dir", join(dir, "emulator")], {
    cwd: dir,
    env: demoEnv(dir, undefined),
    // Its own process group: Ctrl-C reaches crabbox commands, and the demo stops the emulator last.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(
      () => reject(new DemoError(`the emulator did not start in 30 s:\n${stderr}`)),
      30_000,
    );
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        say(`  emulator at ${match[1]} (pid ${child.pid})`);
        resolve({ child, url: match[1] as string });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new DemoError(`the emulator exited (${code}) before listening:\n${stderr}`));
    });
  });
}

async function stopEmulator(emulator: Emulator): Promise<void> {
  const { child } = emulator;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

interface Result {
  code: number;
  stdout: string;
}

/** Runs one crabbox command with its output shown live; stdout is also captured. */
function crabbox(args: string[], env: Record<string, string>, cleanup = false): Promise<Result> {
  if (interrupted && !cleanup) throw new DemoError("interrupted");
  say(bold(`\n▶ crabbox ${args.map((arg) => (/^[\w./:=@-]+$/.test(arg) ? arg : `'${arg}'`)).join(" ")}`));
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "inherit"] });
    current = child;
    let stdout = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      process.stdout.write(chunk);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      current = undefined;
      resolve({ code: code ?? (signal ? 128 : 1), stdout });
    });
  });
}

async function step(args: string[], env: Record<string, string>): Promise<Result> {
  const result = await crabbox(args, env);
  if (interrupted) throw new DemoError("interrupted");
  if (result.code !== 0) throw new DemoError(`crabbox ${args[0]} exited ${result.code}`);
  return result;
}

function sha256(path: string): string {
  return createHash("sha256")
    .update(readFileSync(join(repoRoot, path)))
    .digest("hex");
}

async function demo(dir: string, emulator: Emulator): Promise<void> {
  const env = demoEnv(dir, emulator.url);
  const aws = ["--provider", "aws-lambda-microvm"];
  await step(["doctor", ...aws], env);

  const proof = await step(
    [
      "run",
      ...aws,
      "--",
      "sh",
      "-c",
      `echo "files synced: $(find . -type f | wc -l)"; sha256sum ${proofFiles.join(" ")}; echo "running on: $(uname -sm)"`,
    ],
    env,
  );
  for (const file of proofFiles) {
    if (!proof.stdout.includes(`${sha256(file)}  ${file}`)) {
      throw new DemoError(`sync proof failed: the remote ${file} differs from the local one`);
    }
  }
  say(`  ✓ sync proof: the MicroVM's ${proofFiles.join(", ")} hash exactly like this checkout's`);

  // Set before, not after: a Ctrl-C that lands just as warmup finishes must still stop the lease.
  leaseCreated = true;
  await step(["warmup", ...aws, "--slug", slug], env);
  await step(
    ["run", ...aws, "--id", slug, "--shell", "echo reused lease $CRABBOX_LEASE_ID; ls | head -n 5"],
    env,
  );
  await step(["status", ...aws, slug], env);
  await step(["list", ...aws], env);
  await step(["stop", ...aws, slug], env);
  leaseCreated = false;
}

async function main(): Promise<number> {
  const noBuild = process.argv.includes("--no-build");
  process.on("SIGINT", () => {
    // The crabbox command in the foreground got the same Ctrl-C and cleans up after itself; the
    // demo then stops what it started instead of dying mid-way. A second Ctrl-C is honoured.
    if (interrupted) process.exit(130);
    interrupted = true;
    say("\n^C: stopping everything the demo started (Ctrl-C again to quit at once)");
  });
  process.on("SIGTERM", () => {
    interrupted = true;
    current?.kill("SIGTERM");
  });
  const dir = mkdtempSync(join(tmpdir(), "crabbox-demo-"));
  for (const sub of ["config", "state", "run"]) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  let emulator: Emulator | undefined;
  let failure: unknown;
  try {
    if (!noBuild) build();
    if (!existsSync(binary)) throw new DemoError(`${binary} is missing; run without --no-build`);
    emulator = await startEmulator(dir);
    await demo(dir, emulator);
  } catch (error) {
    failure = error;
  } finally {
    if (emulator && leaseCreated) {
      await crabbox(
        ["stop", "--provider", "aws-lambda-microvm", "--aws-lambda-microvm-forget-missing", slug],
        demoEnv(dir, emulator.url),
        true,
      ).catch(() => undefined);
    }
    if (emulator) {
      say(bold("\n▶ stopping the emulator"));
      await stopEmulator(emulator);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  if (failure === undefined) {
    say(bold("\ndemo complete: one-shot run, retained lease, reuse, status, stop — nothing left running"));
    return 0;
  }
  const message = failure instanceof Error ? failure.message : String(failure);
  if (interrupted) {
    say("demo interrupted; everything it started is stopped");
    return 130;
  }
  process.stderr.write(`demo failed: ${message}\n`);
  return 1;
}

process.exit(await main());
