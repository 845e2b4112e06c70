import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { providerArgs } from "../../src/commands/_args.ts";
import type { ProviderBackend, ProviderFeature } from "../../src/providers/provider.ts";
import { providerNames, providers } from "../../src/providers/registry.ts";
import { RUNNER_IMAGE, startEmulator, stopAllEmulators, type TestEmulator } from "../support/emulator.ts";
import { killChildren, liveMicrovms, type Sandbox, sandbox } from "./provider-run-harness.ts";

/**
 * Provider conformance: every registered provider's declared spec is checked against what its
 * backend does on the emulator, through the compiled binary. A declared feature must work; an
 * undeclared one must be refused up front (exit 2). Registering a provider without an emulator
 * setup below fails this test, so no provider ships untested.
 */

const KNOWN_FEATURES: readonly ProviderFeature[] = ["archive-sync", "pause-resume", "cleanup", "run-session"];
const OPERATIONS: readonly (keyof ProviderBackend)[] = [
  "warmup",
  "run",
  "status",
  "list",
  "stop",
  "pause",
  "resume",
  "cleanup",
  "doctor",
];

/** How each provider reaches the emulator: the environment of its commands. */
const emulatorSetups: Record<string, (emu: TestEmulator) => Record<string, string>> = {
  "aws-lambda-microvm": (emu) => ({
    CRABBOX_AWS_REGION: "us-east-1",
    CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: RUNNER_IMAGE("us-east-1"),
    CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: emu.url,
  }),
};

let emu: TestEmulator;
let box: Sandbox;

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", timeScale: 0.05 });
  box = sandbox(emu);
  box.write("conformance.txt", "synced-by-conformance");
});

afterAll(async () => {
  killChildren();
  await stopAllEmulators();
  box?.cleanup();
});

describe.each(providerNames())("provider %s", (name) => {
  const provider = providers[name];
  if (!provider) throw new Error(`registry lists ${name} without a provider`);
  const { spec } = provider;
  const has = (feature: ProviderFeature) => spec.features.includes(feature);
  const P = ["--provider", name];
  const run = (args: string[]) =>
    box.crabbox(args, { env: { CRABBOX_PROVIDER: "", ...emulatorSetups[name]?.(emu) } });
  const ok = async (args: string[]) => {
    const result = await run(args);
    if (result.code !== 0)
      throw new Error(`crabbox ${args.join(" ")} exited ${result.code}:\n${result.stderr}`);
    return result;
  };

  test("its spec is well-formed", () => {
    expect(spec.name).toBe(name);
    expect(spec.name).toMatch(/^[a-z0-9-]+$/);
    expect(spec.family).not.toBe("");
    expect(spec.kind).toBe("delegated-run");
    expect(spec.targets.length).toBeGreaterThan(0);
    for (const target of spec.targets) expect(target.os).toBe("linux");
    expect(new Set(spec.features).size).toBe(spec.features.length);
    for (const feature of spec.features) expect(KNOWN_FEATURES).toContain(feature);
    // The scope flag is named in "lease not found" hints, so it must be a flag users can pass.
    expect(Object.keys(providerArgs).map((flag) => `--${flag}`)).toContain(spec.scopeFlag);
  });

  test("its backend implements every lifecycle operation", async () => {
    const backend = await provider.backend();
    for (const operation of OPERATIONS) expect(typeof backend[operation]).toBe("function");
  });

  test("it has an emulator setup in this test", () => {
    expect(emulatorSetups[name]).toBeDefined();
  });

  test("doctor passes against the emulator", async () => {
    const report = JSON.parse((await ok(["doctor", ...P, "--json"])).stdout) as {
      ok: boolean;
      provider: string;
    };
    expect(report).toMatchObject({ ok: true, provider: name });
  });

  test("a retained lease behaves as the spec declares, and stop leaves nothing running", async () => {
    const slug = `conf-${name}`.slice(0, 30);
    const warmup = await ok(["warmup", ...P, "--slug", slug]);
    const microvm = /microvm=(\S+)/.exec(warmup.stdout)?.[1] as string;
    expect(microvm).toBeDefined();
    try {
      const status = JSON.parse((await ok(["status", ...P, "--id", slug, "--wait", "--json"])).stdout);
      expect(status).toMatchObject({ slug, provider: name, serverId: microvm, ready: true });
      const list = JSON.parse((await ok(["list", ...P, "--json"])).stdout) as {
        name: string;
        CloudID: string;
      }[];
      expect(list.map((entry) => [entry.name, entry.CloudID])).toContainEqual([slug, microvm]);

      // run-session: a run by lease id reuses the same machine.
      const reuse = await run(["run", ...P, "--id", slug, "--no-sync", "--", "printf", "reuse-ok"]);
      if (has("run-session")) {
        expect(reuse.code).toBe(0);
        expect(reuse.stdout).toBe("reuse-ok");
        expect(reuse.stderr).toContain(microvm);
      }

      // archive-sync: the checkout arrives; --sync-only passes the option gate; --checksum never does.
      if (has("archive-sync")) {
        const synced = await ok(["run", ...P, "--id", slug, "--", "cat", "conformance.txt"]);
        expect(synced.stdout).toBe("synced-by-conformance");
        await ok(["run", ...P, "--id", slug, "--sync-only", "--force-sync-large"]);
      }
      const checksum = await run(["run", ...P, "--id", slug, "--checksum", "--", "true"]);
      expect(checksum.code).toBe(2);

      // pause-resume: declared → blocks until the state; undeclared → refused before any work.
      const pause = await run(["pause", ...P, slug]);
      if (has("pause-resume")) {
        expect(pause.code).toBe(0);
        expect(JSON.parse((await ok(["status", ...P, "--id", slug, "--json"])).stdout).state).toBe(
          "suspended",
        );
        await ok(["resume", ...P, slug]);
        expect(JSON.parse((await ok(["status", ...P, "--id", slug, "--json"])).stdout).state).toBe("running");
      } else {
        expect(pause.code).toBe(2);
      }

      // cleanup: declared → a retained lease is never swept; undeclared → refused.
      const cleanup = await run(["cleanup", ...P, "--dry-run"]);
      if (has("cleanup")) {
        expect(cleanup.code).toBe(0);
        expect(cleanup.stderr).toContain(`skip microvm id=${microvm} reason=keep=true`);
      } else {
        expect(cleanup.code).toBe(2);
      }
    } finally {
      await run(["stop", ...P, slug]);
    }
    expect(JSON.parse((await ok(["list", ...P, "--json"])).stdout)).toEqual([]);
    expect(await liveMicrovms(emu)).toEqual([]);
  });
});
