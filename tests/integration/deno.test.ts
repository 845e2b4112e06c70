import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tryLock } from "../../src/core/lock.ts";
import { type Home, home, repoRoot } from "./cli-harness.ts";

/**
 * The client runs unchanged under Deno (design card: Deno-compatible): web-standard and node:
 * APIs only, Bun-only paths feature-detected. Deno comes from the npm devDependency.
 */

const deno = join(repoRoot, "node_modules", ".bin", "deno");
// Deno's cache goes to a temp dir of this run: inside the repository, biome would lint it.
const denoEnv = { DENO_NO_UPDATE_CHECK: "1", DENO_DIR: mkdtempSync(join(tmpdir(), "crabbox-deno-")) };
const cli = join(repoRoot, "src", "cli.ts");

let h: Home;
const children: ChildProcess[] = [];
beforeAll(() => {
  if (!existsSync(deno)) throw new Error(`${deno} is missing: run npm ci`);
  h = home();
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
});
afterAll(() => {
  h.cleanup();
  rmSync(denoEnv.DENO_DIR, { recursive: true, force: true });
});

test("deno run -A src/cli.ts --help", async () => {
  const { code, stdout, stderr } = await h.run(["run", "-A", cli, "--help"], {
    command: [deno],
    env: denoEnv,
  });
  expect(stderr).toBe("");
  expect(code).toBe(0);
  expect(stdout).toContain("COMMANDS");
  expect(stdout).toContain("  config     ");
});

test("deno run -A src/cli.ts config show --json reads YAML, env and flags", async () => {
  h.write(h.userFile, "provider: aws-lambda-microvm\nawsLambdaMicroVM:\n  workdir: /work/app\n");
  const { code, stdout, stderr } = await h.run(
    ["run", "-A", cli, "config", "show", "--json", "--aws-lambda-microvm-region", "us-west-2"],
    { command: [deno], env: { ...denoEnv, CRABBOX_TTL: "2h" } },
  );
  expect(stderr).toBe("");
  expect(code).toBe(0);
  const shown = JSON.parse(stdout);
  expect(shown.provider).toBe("aws-lambda-microvm");
  expect(shown.awsLambdaMicroVM.workdir).toBe("/work/app");
  expect(shown.ttl).toBe("2h0m0s");
  expect(shown.sources["aws.region"]).toEqual({ source: "flag", origin: "--aws-lambda-microvm-region" });
});

test("under Deno, errors keep their exit codes", async () => {
  const { code, stderr } = await h.run(
    ["run", "-A", cli, "run", "--provider", "aws-lambda-microvm", "--", "true"],
    {
      command: [deno],
      env: denoEnv,
    },
  );
  expect(code).toBe(3);
  expect(stderr).toContain("AWS Lambda MicroVM image is required");
});

test("a Deno process's lock is a real flock: Bun sees it held, and free after kill -9", async () => {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-denolock-"));
  try {
    const lockFile = join(dir, "claim-locks", "cbx_locktest.aws-lambda-microvm-operation.lock");
    const child = spawn(
      deno,
      ["run", "-A", join(repoRoot, "tests", "fixtures", "claims", "hold-lock.ts"), lockFile],
      {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? "", HOME: h.env.HOME, ...denoEnv },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      let out = "";
      let err = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("locked")) resolve();
      });
      child.stderr?.on("data", (chunk: Buffer) => {
        err += chunk.toString();
      });
      child.on("exit", (code) => reject(new Error(`deno lock holder exited ${code}: ${err}`)));
    });
    expect(await tryLock(lockFile)).toBeUndefined();
    const gone = new Promise((resolve) => child.on("exit", resolve));
    child.kill("SIGKILL");
    await gone;
    const lock = await tryLock(lockFile);
    expect(lock).toBeDefined();
    lock?.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
