/**
 * The slow fault suite, part 3: a full state directory. CI runs as root, so permission bits prove
 * nothing; instead each CLI runs in its own user+mount namespace (`unshare --user --map-root-user
 * --mount`) with a size- and inode-limited tmpfs mounted over $XDG_STATE_HOME, filled to a given
 * level. The state persists between commands: the namespace's script copies the host directory
 * into the tmpfs before the command and back after it, so the leak check reads what crabbox left.
 *
 * A full disk may fail a run, but only clearly (exit 1, "no space left on device" and what to do),
 * never with a MicroVM left running or a claim left without one; and `list`, `stop` and `cleanup`
 * — the commands that free resources — must still work on it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { binary } from "../integration/cli-harness.ts";
import { killChildren, microvmIdOf, type Result } from "../integration/provider-run-harness.ts";
import { startEmulator, type TestEmulator } from "../support/emulator.ts";
import { assertNoLeaks, type Box, box, printLeakTable } from "./support.ts";

setDefaultTimeout(120_000);

let emu: TestEmulator;
const boxes: Box[] = [];

const namespaces =
  process.platform === "linux" &&
  spawnSync("unshare", ["--user", "--map-root-user", "--mount", "true"], { stdio: "ignore" }).status === 0;

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", testApi: true });
});
afterEach(() => killChildren());
afterAll(async () => {
  killChildren();
  for (const b of boxes) b.cleanup();
  await emu?.stop();
  printLeakTable("reliability-full-state");
});

/** Runs inside the namespace: tmpfs over the state dir, state in, filler, the command, state out. */
const SCRIPT = `set -e
under="$1"; shift
mkdir -p "$XDG_STATE_HOME" "$under"
mount --bind "$XDG_STATE_HOME" "$under"
mount -t tmpfs -o "size=$FULL_SIZE,nr_inodes=$FULL_INODES,mode=0700" tmpfs "$XDG_STATE_HOME"
cp -a "$under/." "$XDG_STATE_HOME/"
if [ "$FULL_FILL" = all ]; then
  dd if=/dev/zero of="$XDG_STATE_HOME/.filler" bs=1024 2>/dev/null || true
  i=0; while true 2>/dev/null > "$XDG_STATE_HOME/.inode-$i"; do i=$((i + 1)); done
elif [ "$FULL_FILL" -gt 0 ]; then
  dd if=/dev/zero of="$XDG_STATE_HOME/.filler" bs=1024 count="$FULL_FILL" 2>/dev/null || true
fi
set +e
"$@"; rc=$?
rm -f "$XDG_STATE_HOME/.filler" "$XDG_STATE_HOME"/.inode-*
find "$under" -mindepth 1 -delete
cp -a "$XDG_STATE_HOME/." "$under/"
exit $rc`;

interface Fullness {
  /** tmpfs size, e.g. "64k". */
  size: string;
  /** KiB of filler, or "all" (no byte and no inode left). */
  fill: number | "all";
  inodes?: number;
}

function onFullDisk(b: Box, args: string[], full: Fullness): Promise<Result> {
  const command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", SCRIPT, "sh"];
  return b.start(args, {
    command: [...command, join(b.root, "under"), binary],
    env: { FULL_SIZE: full.size, FULL_FILL: String(full.fill), FULL_INODES: String(full.inodes ?? 400) },
  }).exited;
}

function checkout(): Box {
  const b = box(emu, boxes);
  b.write("proof.txt", "synced\n");
  return b;
}

const runMicrovms = () => emu.records().filter((record) => record.op === "RunMicrovm").length;

describe.skipIf(!namespaces)("a full state directory (tmpfs in a user+mount namespace)", () => {
  test("a one-shot run at every fill level: succeeds, or fails clearly and leaves nothing", async () => {
    const levels: Fullness[] = [
      { size: "64k", fill: "all" },
      ...[60, 56, 52, 48, 44, 40, 0].map((fill) => ({ size: "64k", fill })),
      ...[4, 6, 8, 10, 12, 16].map((inodes) => ({ size: "1m", fill: 0, inodes })),
    ];
    const outcomes = new Set<string>();
    for (const level of levels) {
      const b = checkout();
      const before = runMicrovms();
      const result = await onFullDisk(b, ["run", "--", "cat", "proof.txt"], level);
      const asked = runMicrovms() > before;
      const name = `size=${level.size} fill=${level.fill}${level.inodes ? ` inodes=${level.inodes}` : ""}`;
      if (result.code === 0) {
        expect(result.stdout).toBe("synced\n");
        outcomes.add("ran");
      } else {
        expect({ level: name, stderr: result.stderr }).toMatchObject({
          level: name,
          stderr: expect.stringContaining("no space left on device"),
        });
        expect(result.stderr).toContain("hint: the disk is full: free some space and retry");
        outcomes.add(asked ? "failed after RunMicrovm (rolled back)" : "failed before RunMicrovm");
      }
      await assertNoLeaks({
        scenario: `full state dir, one-shot run, ${name}: ${result.code === 0 ? "ran" : asked ? "failed, rolled back" : "failed before RunMicrovm"}`,
        emu,
        boxes: [b],
        exits: [{ label: "run", actual: result.code, expected: result.code === 0 ? 0 : 1 }],
      });
    }
    expect([...outcomes].sort()).toEqual(
      ["failed after RunMicrovm (rolled back)", "failed before RunMicrovm", "ran"].sort(),
    );
  });

  test("a retained lease on a full disk: list and status work, run --id runs, stop releases it", async () => {
    const b = checkout();
    const warm = await b.crabbox(["warmup", "--slug", "full"]);
    expect(warm.code).toBe(0);
    const microvm = microvmIdOf(warm.stdout);
    const full: Fullness = { size: "256k", fill: "all" };
    const list = await onFullDisk(b, ["list"], full);
    expect(list.stdout).toContain(microvm);
    const status = await onFullDisk(b, ["status", "--id", "full", "--json"], full);
    expect(JSON.parse(status.stdout)).toMatchObject({ serverId: microvm, state: "running" });
    const run = await onFullDisk(b, ["run", "--id", "full", "--", "cat", "proof.txt"], full);
    expect({ stdout: run.stdout, stderr: run.stderr }).toMatchObject({ stdout: "synced\n" });
    await assertNoLeaks({
      scenario: "full state dir: list, status, run --id on a retained lease",
      emu,
      boxes: [b],
      exits: [
        { label: "list", actual: list.code, expected: 0 },
        { label: "status", actual: status.code, expected: 0 },
        { label: "run --id", actual: run.code, expected: 0 },
      ],
      kept: [microvm],
    });
    const stop = await onFullDisk(b, ["stop", "full"], full);
    expect(stop.stderr).toContain(`microvm=${microvm}`);
    await assertNoLeaks({
      scenario: "full state dir: stop releases the lease",
      emu,
      boxes: [b],
      exits: [{ label: "stop", actual: stop.code, expected: 0 }],
    });
  });

  test("kill -9 mid-run, then cleanup on a full disk terminates the abandoned MicroVM", async () => {
    const b = checkout();
    const run = b.start(["run", "--", "sh", "-c", "echo started; sleep 120"]);
    await run.waitFor("started\n");
    process.kill(-(run.child.pid as number), "SIGKILL");
    const killed = (await run.exited).code;
    const clean = await onFullDisk(b, ["cleanup"], { size: "256k", fill: "all" });
    expect(clean.stderr).toContain("cleanup terminated 1, kept 0");
    await assertNoLeaks({
      scenario: "full state dir: cleanup after kill -9",
      emu,
      boxes: [b],
      exits: [
        { label: "run", actual: killed, expected: 128 },
        { label: "cleanup", actual: clean.code, expected: 0 },
      ],
    });
  });
});
