/**
 * A runner that is PID 1 (an image CMD, or the emulator's `unshare --pid --fork` isolation) must
 * reap the background children that outlive a command's shell, without stealing its shells' exit
 * codes. Needs root (or user namespaces) for `unshare --pid`.
 */
import { afterAll, expect, test } from "bun:test";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../../scripts/bun-runtime.ts";

const probe = spawnSync("unshare", ["--pid", "--fork", "--mount-proc", "true"], { encoding: "utf8" });
const canUnshare = probe.status === 0;
if (!canUnshare)
  console.log(`SKIP runner PID 1 reaping: unshare --pid is not available here (${probe.stderr?.trim()})`);

const dir = mkdtempSync(join(tmpdir(), "crabbox-runner-pid1-"));
let child: ChildProcess | undefined;
afterAll(() => {
  if (child?.pid) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true });
});

function childrenOf(pid: number): { pid: number; state: string }[] {
  const out = spawnSync("ps", ["-o", "pid=,stat=", "--ppid", String(pid)], { encoding: "utf8" }).stdout;
  return out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [p, state] = line.trim().split(/\s+/);
      return { pid: Number(p), state: state ?? "" };
    });
}

test.skipIf(!canUnshare)(
  "orphans of a command are reaped; exit codes stay exact",
  async () => {
    child = spawn(
      "unshare",
      [
        "--pid",
        "--fork",
        "--mount-proc",
        process.execPath,
        join(repoRoot, "runner/main.ts"),
        "--listen",
        "127.0.0.1:0",
        "--root",
        join(dir, "root"),
      ],
      { stdio: ["ignore", "ignore", "pipe"], detached: true },
    );
    let stderr = "";
    const url = await new Promise<string>((resolve, reject) => {
      child?.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /listening on (http:\/\/\S+)/.exec(stderr);
        if (match) resolve(match[1] as string);
      });
      child?.on("exit", (code) => reject(new Error(`runner exited ${code}: ${stderr}`)));
    });
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${url}/v1/exec`, {
        method: "POST",
        body: JSON.stringify({
          command: '(sleep 0.1 &); sh -c "sleep 0.1 &"; exit 5',
          workdir: "/workspace/crabbox",
        }),
      });
      const last = JSON.parse((await response.text()).trim().split("\n").at(-1) as string);
      expect(last).toMatchObject({ type: "exit", exitCode: 5, reason: "exited" });
    }
    const runnerPid = Number(
      readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(" ")[0],
    );
    expect(runnerPid).toBeGreaterThan(0);
    const deadline = Date.now() + 5000;
    let zombies = childrenOf(runnerPid).filter((entry) => entry.state.startsWith("Z"));
    while (zombies.length > 0 && Date.now() < deadline) {
      await Bun.sleep(100);
      zombies = childrenOf(runnerPid).filter((entry) => entry.state.startsWith("Z"));
    }
    expect(zombies).toEqual([]);
  },
  30_000,
);
