/**
 * The run features under Deno (client code is web-standard + node: APIs): piped stdin, artifacts,
 * `--json-summary`, `--timeout` and a trapped Ctrl-C forwarded to the remote command.
 */
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot, startEmulator, type TestEmulator } from "../support/emulator.ts";
import { killChildren, type Sandbox, sandbox } from "./provider-run-harness.ts";
import { expectNoLiveMicrovms, readSummary } from "./run-support.ts";

setDefaultTimeout(60_000);

const deno = join(repoRoot, "node_modules", ".bin", "deno");
const cli = join(repoRoot, "src", "cli.ts");
// Deno's cache goes to a temp dir of this run: inside the repository, biome would lint it.
const denoEnv = { DENO_NO_UPDATE_CHECK: "1", DENO_DIR: mkdtempSync(join(tmpdir(), "crabbox-deno-")) };

let emu: TestEmulator;
let b: Sandbox;

beforeAll(async () => {
  if (!existsSync(deno)) throw new Error(`${deno} is missing: run npm ci`);
  emu = await startEmulator({ binary: "dist" });
  b = sandbox(emu);
});
afterEach(() => killChildren());
afterAll(async () => {
  killChildren();
  b?.cleanup();
  await emu?.stop();
  rmSync(denoEnv.DENO_DIR, { recursive: true, force: true });
});

test("deno: piped stdin, --download, --json-summary and --timeout", async () => {
  const summaryFile = join(b.root, "summary.json");
  const dir = join(b.root, "art");
  const result = await b.start(
    [
      "run",
      "--no-sync",
      "--timeout",
      "30s",
      "--json-summary",
      summaryFile,
      "--download",
      "out",
      "--artifact-dir",
      dir,
      "--",
      "sh",
      "-c",
      "mkdir -p out; cat > out/in.txt; wc -c < out/in.txt",
    ],
    { command: ["sh", "-c", 'printf "via deno" | "$0" "$@"', deno, "run", "-A", cli], env: denoEnv },
  ).exited;
  expect(result.stderr).not.toContain("error:");
  expect(result.code).toBe(0);
  expect(result.stdout.trim()).toBe("8");
  expect(readFileSync(join(dir, "out/in.txt"), "utf8")).toBe("via deno");
  expect(readSummary(summaryFile)).toMatchObject({
    status: "succeeded",
    exitCode: 0,
    exitCodeSource: "remote",
  });
});

test("deno: Ctrl-C reaches a trapping command, exit 130, nothing left", async () => {
  const run = b.start(
    ["run", "--no-sync", "--shell", 'trap "echo got-sigint; exit 9" INT; echo started; sleep 60 & wait'],
    {
      command: [deno, "run", "-A", cli],
      env: denoEnv,
    },
  );
  await run.waitFor("started");
  process.kill(run.child.pid as number, "SIGINT");
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(result.stdout).toBe("started\ngot-sigint\n");
  expect(b.claims()).toEqual([]);
  await expectNoLiveMicrovms(emu);
});
