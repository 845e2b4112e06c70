/**
 * MicroVM isolation with bubblewrap and with plain user+mount+pid namespaces (CI installs
 * bubblewrap): the VM cannot read the host's $HOME, sees its workdir at /workspace/crabbox and a
 * private /tmp, suspend stops every process in its pid namespace, and nothing outlives the emulator.
 */

import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ResumeMicrovmCommand,
  SuspendMicrovmCommand,
  TerminateMicrovmCommand,
} from "@aws-sdk/client-lambda-microvms";
import {
  dataFetch,
  execIn,
  runMicrovm,
  startEmulator,
  stopAllEmulators,
  waitForState,
} from "../support/emulator.ts";

// Real processes and scaled lifecycles: more than bun test's 5 s default when run directly.
setDefaultTimeout(30_000);

const temps: string[] = [];
afterAll(async () => {
  await stopAllEmulators();
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] ?? "";
  } catch {
    return "gone";
  }
}

for (const isolation of ["bwrap", "ns"] as const) {
  describe(`--isolation ${isolation}`, () => {
    test("the VM cannot read the host's $HOME, has its workdir at /workspace/crabbox and a private /tmp", async () => {
      const home = mkdtempSync(join(tmpdir(), "crabbox-host-home-"));
      temps.push(home);
      writeFileSync(join(home, "secret.txt"), "host secret\n");
      const hostTmp = mkdtempSync(join(tmpdir(), "crabbox-host-tmp-"));
      temps.push(hostTmp);
      const emu = await startEmulator({ isolation, env: { HOME: home } });
      const vm = await runMicrovm(emu);
      expect(emu.stderr()).toContain(`isolation: ${isolation}`);
      const result = await execIn(
        emu,
        vm,
        `pwd; echo "home=$HOME"; cat ${join(home, "secret.txt")} || echo no-secret; ls ${hostTmp} || echo no-host-tmp; touch /tmp/mine && echo tmp-ok`,
      );
      expect(result.exit?.exitCode).toBe(0);
      const lines = result.stdout.trim().split("\n");
      expect(lines[0]).toBe("/workspace/crabbox");
      expect(lines[1]).toBe("home=/root");
      expect(result.stdout).not.toContain("host secret");
      expect(result.stdout).toContain("no-secret");
      expect(result.stdout).toContain("no-host-tmp");
      expect(result.stdout).toContain("tmp-ok");
      await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: vm.microvmId }));
      await waitForState(emu, vm.microvmId, "TERMINATED");
      expect(await emu.stop()).toBe(0);
      expect(emu.survivors()).toEqual([]);
    });

    test("suspend stops every process of the VM; SIGKILL of the emulator takes even a frozen VM down", async () => {
      const emu = await startEmulator({ isolation, testApi: true });
      const vm = await runMicrovm(emu);
      await execIn(emu, vm, "setsid sleep 300 </dev/null >/dev/null 2>&1 &");
      await Bun.sleep(200);
      await emu.client().send(new SuspendMicrovmCommand({ microvmIdentifier: vm.microvmId }));
      await waitForState(emu, vm.microvmId, "SUSPENDED");
      const inspect = (await (await fetch(`${emu.url}/_emulator/microvms/${vm.microvmId}`)).json()) as {
        processes: number[];
      };
      expect(inspect.processes.length).toBeGreaterThanOrEqual(3);
      expect(inspect.processes.map(processState).filter((state) => state !== "T")).toEqual([]);
      // Thawed, the sandboxed runner serves again (auto-resume is off: resume explicitly).
      await emu.client().send(new ResumeMicrovmCommand({ microvmIdentifier: vm.microvmId }));
      await waitForState(emu, vm.microvmId, "RUNNING");
      expect(inspect.processes.map(processState).filter((state) => state === "T")).toEqual([]);
      expect((await dataFetch(emu, vm, "/health")).status).toBe(200);
      await emu.client().send(new SuspendMicrovmCommand({ microvmIdentifier: vm.microvmId }));
      await waitForState(emu, vm.microvmId, "SUSPENDED");
      emu.kill("SIGKILL");
      await emu.stop();
      if (isolation === "bwrap") {
        // --die-with-parent: the sandbox dies with the emulator, frozen or not.
        expect(emu.survivors()).toEqual([]);
      }
      // With plain namespaces a frozen VM waits for a restarted emulator to reap it; stop() did.
      expect(
        inspect.processes.filter((pid) => processState(pid) !== "gone" && processState(pid) !== "Z"),
      ).toEqual([]);
    });
  });
}
