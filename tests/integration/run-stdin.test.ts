/**
 * stdin of `crabbox run` (compiled binary, real emulator): a pipe or a file is streamed with its
 * EOF, byte for byte (10 MiB); a socket — what a Node harness hands its children — is not, so a
 * harness that never closes it cannot hang the run; `--stdin` / `--no-stdin` decide otherwise; a
 * pipe that never closes does not hold up a command that does not read it.
 */
import { expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { binary } from "./cli-harness.ts";
import { providerSuite, type Sandbox } from "./provider-run-harness.ts";
import { expectNoLiveMicrovms } from "./run-support.ts";

const { emu, box } = providerSuite({ binary: "dist" });

/** Runs crabbox inside `sh -c`, so the shell sets up its stdin (a pipe or a redirect). */
function viaShell(b: Sandbox, script: string, args: string[]) {
  return b.start(args, { command: ["sh", "-c", script, binary] }).exited;
}

test("10 MiB piped into the command arrive byte-exact, with EOF", async () => {
  const b = box();
  const data = randomBytes(10 * 1024 * 1024);
  const file = join(b.root, "stdin.bin");
  writeFileSync(file, data);
  const sha = createHash("sha256").update(data).digest("hex");
  const result = await viaShell(b, `cat '${file}' | "$0" "$@"`, [
    "run",
    "--no-sync",
    "--",
    "sh",
    "-c",
    "tee received.bin | sha256sum | cut -c1-64; wc -c < received.bin",
  ]);
  expect(result.stderr).not.toContain("error:");
  expect(result.code).toBe(0);
  expect(result.stdout.trim().split(/\s+/)).toEqual([sha, String(data.length)]);
  await expectNoLiveMicrovms(emu());
});

test("a file redirected to stdin is streamed: crabbox run -- sh < script.sh", async () => {
  const b = box();
  const script = join(b.root, "script.sh");
  writeFileSync(script, 'echo "from script"\necho "line two" >&2\nexit 5\n');
  const result = await viaShell(b, `exec "$0" "$@" < '${script}'`, ["run", "--no-sync", "--", "sh"]);
  expect(result.code).toBe(5);
  expect(result.stdout).toBe("from script\n");
  expect(result.stderr).toContain("line two\n");
});

test("--no-stdin gives the command an empty stdin even when a file is redirected", async () => {
  const b = box();
  const file = join(b.root, "input.txt");
  writeFileSync(file, "not for the command\n");
  const result = await viaShell(b, `exec "$0" "$@" < '${file}'`, [
    "run",
    "--no-sync",
    "--no-stdin",
    "--",
    "wc",
    "-c",
  ]);
  expect(result.code).toBe(0);
  expect(result.stdout.trim()).toBe("0");
});

test("a socket a harness never closes is not attached: the command sees EOF and the run ends", async () => {
  const b = box();
  const run = b.start(["run", "--no-sync", "--", "sh", "-c", "cat; echo after-eof"], { stdin: "pipe" });
  // The pipe (a socketpair, as Node makes them) stays open for the whole test.
  run.child.stdin?.write("never read\n");
  const result = await run.exited;
  expect(result.code).toBe(0);
  expect(result.stdout).toBe("after-eof\n");
});

test("--stdin attaches that same socket; its end is the command's EOF", async () => {
  const b = box();
  const run = b.start(["run", "--no-sync", "--stdin", "--", "sh", "-c", "cat; echo after-eof"], {
    stdin: "pipe",
  });
  run.child.stdin?.write("hello ");
  run.child.stdin?.end("world\n");
  const result = await run.exited;
  expect(result.code).toBe(0);
  expect(result.stdout).toBe("hello world\nafter-eof\n");
});

test("a pipe that never closes does not hold up a command that does not read it", async () => {
  const b = box();
  const run = b.start([], {
    command: [
      "sh",
      "-c",
      'sleep 60 | { "$0" "$@"; echo "crabbox-exit=$?" >&2; }',
      binary,
      "run",
      "--no-sync",
      "--",
      "echo",
      "hi",
    ],
  });
  await run.waitFor("crabbox-exit=0");
  expect(run.stdout()).toBe("hi\n");
  await expectNoLiveMicrovms(emu());
});
