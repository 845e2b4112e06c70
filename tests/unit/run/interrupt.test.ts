import { afterEach, expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  InterruptError,
  installInterrupts,
  interruptSignalOf,
  leftBehindLines,
  ownedClaimsSync,
} from "../../../src/core/interrupt.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function harness(stateDir?: string) {
  const target = new EventEmitter();
  const written: string[] = [];
  const exits: number[] = [];
  const interrupts = installInterrupts({
    stateDir,
    target: target as unknown as NodeJS.Process,
    write: (text) => written.push(text),
    exit: (code) => exits.push(code),
    pid: 4242,
  });
  return { target, written, exits, interrupts };
}

test("the first signal aborts with an InterruptError naming it; nothing exits", () => {
  const { target, written, exits, interrupts } = harness();
  target.emit("SIGHUP");
  expect(interrupts.signal.aborted).toBe(true);
  expect(interrupts.signal.reason).toBeInstanceOf(InterruptError);
  expect(interruptSignalOf(interrupts.signal.reason)).toBe("SIGHUP");
  expect((interrupts.signal.reason as InterruptError).exitCode).toBe(130);
  expect(written.join("")).toContain("interrupt again to exit at once");
  expect(exits).toEqual([]);
  interrupts.dispose();
  expect(target.listenerCount("SIGINT")).toBe(0);
});

test("a second signal runs the hooks, names the leases this process holds, and exits 130", () => {
  const state = mkdtempSync(join(tmpdir(), "crabbox-interrupt-"));
  dirs.push(state);
  mkdirSync(join(state, "claims"));
  const claim = (id: string, pid: number, cloudID: string) =>
    writeFileSync(
      join(state, "claims", `${id}.json`),
      JSON.stringify({ leaseID: id, provider: "aws-lambda-microvm", cloudID, owner: { pid, host: "h" } }),
    );
  claim("cbx_aaaaaaaaaaaa", 4242, "microvm-1");
  claim("cbx_bbbbbbbbbbbb", 4242, "");
  claim("cbx_cccccccccccc", 999, "microvm-3");
  writeFileSync(join(state, "claims", "cbx_dddddddddddd.json"), "{torn");

  const { target, written, exits, interrupts } = harness(state);
  const calls: string[] = [];
  interrupts.onForcedExit(() => {
    calls.push("summary");
    return undefined;
  });
  const unregister = interrupts.onForcedExit(() => ["never said"]);
  unregister();
  interrupts.onForcedExit(() => {
    throw new Error("a broken hook must not block the exit");
  });
  interrupts.onForcedExit(() => ["still running: command run_x on lease cbx_eeeeeeeeeeee"]);
  target.emit("SIGINT");
  target.emit("SIGTERM");
  expect(exits).toEqual([130]);
  expect(calls).toEqual(["summary"]);
  const text = written.join("");
  expect(text).toContain("error: SIGTERM again: exiting now, without cleaning up");
  expect(text).toContain("still running: command run_x on lease cbx_eeeeeeeeeeee");
  expect(text).toContain(
    "still alive: lease cbx_aaaaaaaaaaaa (MicroVM microvm-1); stop it with: crabbox stop --provider aws-lambda-microvm cbx_aaaaaaaaaaaa",
  );
  expect(text).toContain(
    "still alive: lease cbx_bbbbbbbbbbbb was being created; find and terminate its MicroVM with: crabbox cleanup --provider aws-lambda-microvm",
  );
  expect(text).not.toContain("cbx_cccccccccccc");
  expect(text).not.toContain("never said");
  interrupts.dispose();
});

test("owned claims: only this pid's, none without a claims dir", () => {
  expect(ownedClaimsSync("/nonexistent/state", 1)).toEqual([]);
  expect(leftBehindLines([{ leaseID: "cbx_x", provider: "", cloudID: "m" }])).toEqual([
    "still alive: lease cbx_x (MicroVM m); stop it with: crabbox stop cbx_x",
  ]);
});
