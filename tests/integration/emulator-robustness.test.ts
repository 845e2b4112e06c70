/**
 * The emulator as a process: its command line and first stdout lines, the compiled binary running
 * its own runner (`__runner`), SIGTERM terminating every VM, and SIGKILL + restart leaving no VM
 * process alive.
 */

import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  GetMicrovmCommand,
  ResourceNotFoundException,
  SuspendMicrovmCommand,
} from "@aws-sdk/client-lambda-microvms";
import {
  execIn,
  repoRoot,
  runMicrovm,
  startEmulator,
  stopAllEmulators,
  type TestEmulator,
  waitForState,
} from "../support/emulator.ts";

// Real processes and scaled lifecycles: more than bun test's 5 s default when run directly.
setDefaultTimeout(30_000);

const temps: string[] = [];
afterAll(async () => {
  await stopAllEmulators();
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}) {
  const home = mkdtempSync(join(tmpdir(), "crabbox-emu-cli-"));
  temps.push(home);
  return spawnSync(process.execPath, [join(repoRoot, "src", "cli.ts"), "emulator", ...args], {
    encoding: "utf8",
    timeout: 30_000,
    env: {
      ...process.env,
      HOME: home,
      XDG_STATE_HOME: join(home, "state"),
      XDG_CONFIG_HOME: join(home, "config"),
      ...env,
    },
  });
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await Bun.sleep(50);
  }
  return condition();
}

async function processesOf(emu: TestEmulator, id: string): Promise<number[]> {
  const response = await fetch(`${emu.url}/_emulator/microvms/${id}`);
  return ((await response.json()) as { processes: number[] }).processes;
}

describe("command line", () => {
  test("bad flags are usage errors (exit 2)", () => {
    const fault = cli(["--port", "0", "--fault", "explode"]);
    expect(fault.status).toBe(2);
    expect(fault.stderr).toContain("unknown fault 'explode'");
    const isolation = cli(["--isolation", "docker"]);
    expect(isolation.status).toBe(2);
    const scale = cli(["--time-scale", "0"]);
    expect(scale.status).toBe(2);
  });

  test("first stdout line, export lines; a second emulator on the same state dir is refused", async () => {
    const emu = await startEmulator({ isolation: "none" });
    // startEmulator already matched the exact first line; check the rest of stdout too.
    const again = cli(["--port", "0", "--state-dir", emu.stateDir, "--isolation", "none"]);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain("another crabbox emulator");
    expect(await emu.stop()).toBe(0);
  });

  test("a non-loopback --host warns", async () => {
    const emu = await startEmulator({ isolation: "none", args: ["--host", "0.0.0.0"] });
    expect(emu.url).toStartWith("http://0.0.0.0:");
    expect(await until(() => emu.stderr().includes("warning: listening on 0.0.0.0"), 5000)).toBe(true);
    expect(await emu.stop()).toBe(0);
  });

  test("stdout is exactly the listening line and the exports", async () => {
    const home = mkdtempSync(join(tmpdir(), "crabbox-emu-cli-"));
    temps.push(home);
    const child = spawn(
      process.execPath,
      [
        join(repoRoot, "src", "cli.ts"),
        "emulator",
        "--port",
        "0",
        "--state-dir",
        join(home, "s"),
        "--isolation",
        "none",
      ],
      { env: { ...process.env, HOME: home, AWS_REGION: "eu-west-1" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    expect(await until(() => out.split("\n").length >= 5, 20_000)).toBe(true);
    const exited = new Promise<number | null>((done) => child.on("exit", done));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    const lines = out.trimEnd().split("\n");
    const url = /^crabbox emulator listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(lines[0] ?? "")?.[1];
    expect(url).toBeString();
    expect(lines.slice(1)).toEqual([
      `export AWS_ENDPOINT_URL_LAMBDA_MICROVMS=${url}`,
      `export AWS_ENDPOINT_URL_S3=${url}`,
      "export AWS_REGION=eu-west-1",
    ]);
  });
});

describe("shutdown and crash recovery", () => {
  test("the compiled binary serves MicroVMs with its own runner; SIGTERM terminates every VM, exit 0", async () => {
    const emu = await startEmulator({ binary: "dist", isolation: "none", testApi: true });
    const [running, frozen] = await Promise.all([runMicrovm(emu), runMicrovm(emu)]);
    const result = await execIn(emu, running, "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $PPID");
    expect(result.exit?.exitCode).toBe(0);
    await emu.client().send(new SuspendMicrovmCommand({ microvmIdentifier: frozen.microvmId }));
    await waitForState(emu, frozen.microvmId, "SUSPENDED");
    const pids = [
      ...(await processesOf(emu, running.microvmId)),
      ...(await processesOf(emu, frozen.microvmId)),
    ];
    expect(pids.length).toBeGreaterThanOrEqual(3);
    const runnerCmd = readFileSync(`/proc/${pids[0]}/cmdline`, "utf8");
    expect(runnerCmd).toContain("__runner");

    expect(await emu.stop("SIGTERM")).toBe(0);
    expect(emu.survivors()).toEqual([]);
    expect(pids.filter(alive)).toEqual([]);
    const terminated = emu
      .records()
      .filter((record) => record.plane === "hook" && record.op === "terminate")
      .map((record) => record.microvmId)
      .sort();
    expect(terminated).toEqual([running.microvmId, frozen.microvmId].sort());
  });

  test("after SIGKILL runners die with the emulator; a restart reaps the rest and forgets the VMs", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "crabbox-emu-state-"));
    temps.push(stateDir);
    const emu = await startEmulator({ isolation: "none", testApi: true, stateDir });
    const vm = await runMicrovm(emu);
    await execIn(emu, vm, "setsid sleep 300 </dev/null >/dev/null 2>&1 &");
    const commandOf = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        return "";
      }
    };
    // The background sleep may still be on its way (sh -> setsid -> exec) when the exec ends.
    let pids: number[] = [];
    for (let i = 0; i < 100 && !pids.some((pid) => commandOf(pid).startsWith("sleep")); i++) {
      await Bun.sleep(20);
      pids = await processesOf(emu, vm.microvmId);
    }
    const runnerPid = pids.find((pid) => commandOf(pid).includes("runner/main.ts"));
    expect(runnerPid).toBeNumber();
    const sleeper = pids.find((pid) => commandOf(pid).startsWith("sleep"));
    expect(sleeper).toBeNumber();

    emu.kill("SIGKILL");
    // The runner watches its stdin pipe from the emulator: EOF, it exits.
    expect(await until(() => !alive(runnerPid as number), 10_000)).toBe(true);

    const restarted = await startEmulator({ isolation: "none", testApi: true, stateDir });
    // Reaping happens before the listening line: nothing of the old VM is left.
    expect(pids.filter(alive)).toEqual([]);
    expect(restarted.stderr()).toContain("reaped");
    const error = await restarted
      .client()
      .send(new GetMicrovmCommand({ microvmIdentifier: vm.microvmId }))
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ResourceNotFoundException);
    expect(await restarted.stop()).toBe(0);
    await emu.stop();
  });
});
