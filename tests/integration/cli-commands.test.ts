import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Home, home, requireBinary } from "./cli-harness.ts";

/**
 * Every provider command parses, resolves config, selects and validates the provider and resolves
 * the lease — with the documented exit codes — before its backend makes a single AWS call. The
 * control plane here is a dead loopback port, so reaching the backend shows as the emulator-mode
 * banner followed by a connection error (exit 1).
 */

let h: Home;
const IMAGE = "arn:aws:lambda:eu-west-1:123456789012:microvm-image:crabbox-runner";
const AWS = ["--provider", "aws-lambda-microvm"];
const WITH_IMAGE = { CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: IMAGE };

beforeAll(() => {
  requireBinary();
  h = home();
  h.claim({ leaseID: "cbx_aaaaaaaaaaaa", slug: "lambda-test" });
  h.claim({ leaseID: "cbx_bbbbbbbbbbbb", slug: "west-lease", providerScope: "us-west-2" });
});
afterAll(() => h.cleanup());

const reached = "emulator mode: control plane http://127.0.0.1:9";
const DEAD_ENDPOINT = { CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: "http://127.0.0.1:9" };
const cli = (args: string[], options: Parameters<Home["run"]>[1] = {}) =>
  h.run(args, { ...options, env: { ...DEAD_ENDPOINT, ...options.env } });

describe("provider selection", () => {
  test("none selected is exit 2 naming every way to select one and what exists", async () => {
    const { code, stderr } = await cli(["list"]);
    expect(code).toBe(2);
    expect(stderr).toContain("no provider selected; use --provider <name>, set CRABBOX_PROVIDER");
    expect(stderr).toContain("aws-lambda-microvm");
  });

  test("an unknown provider is exit 2 listing what exists", async () => {
    for (const run of [
      cli(["list", "--provider", "hetzner"]),
      cli(["list"], { env: { CRABBOX_PROVIDER: "hetzner" } }),
    ]) {
      const { code, stderr } = await run;
      expect(code).toBe(2);
      expect(stderr).toContain('unknown provider "hetzner"; this crabbox supports: aws-lambda-microvm');
    }
  });

  test("from the environment, a config file, or the flag (case-insensitive)", async () => {
    expect((await cli(["list"], { env: { CRABBOX_PROVIDER: "AWS-Lambda-MicroVM" } })).stderr).toContain(
      reached,
    );
    h.write(join(h.repo, "crabbox.yaml"), "provider: aws-lambda-microvm\n");
    try {
      expect((await cli(["list"])).stderr).toContain(reached);
    } finally {
      h.write(join(h.repo, "crabbox.yaml"), "");
    }
  });

  test("a lease names its own provider: stop/pause/resume/status need no --provider", async () => {
    for (const args of [
      ["stop", "lambda-test"],
      ["release", "Lambda Test"],
      ["pause", "cbx_aaaaaaaaaaaa"],
      ["resume", "--id", "lambda-test"],
      ["status", "lambda-test"],
    ]) {
      const { code, stderr } = await cli(args);
      expect({ args, code, reached: stderr.includes(reached) }).toEqual({ args, code: 1, reached: true });
    }
  });
});

describe("the image is required only by commands that create or probe", () => {
  for (const args of [["run", "--", "true"], ["warmup"], ["doctor"]]) {
    test(`${args[0]} without an image is exit 3 naming the env var and flag`, async () => {
      const { code, stderr } = await cli([...args.slice(0, 1), ...AWS, ...args.slice(1)]);
      expect(code).toBe(3);
      expect(stderr).toContain(
        "error: AWS Lambda MicroVM image is required; set CRABBOX_AWS_LAMBDA_MICROVM_IMAGE or --aws-lambda-microvm-image",
      );
    });
  }

  for (const args of [
    ["list"],
    ["cleanup", "--dry-run"],
    ["stop", "lambda-test"],
    ["status", "--id", "lambda-test"],
    ["pause", "lambda-test"],
    ["resume", "lambda-test"],
  ]) {
    test(`${args[0]} works from the claim alone`, async () => {
      const { code, stderr } = await cli([...args, ...AWS]);
      expect(code).toBe(1);
      expect(stderr).toContain(reached);
    });
  }

  test("with an image, run/warmup/doctor reach the backend", async () => {
    for (const args of [
      ["run", ...AWS, "--no-sync", "--", "true"],
      ["warmup", ...AWS, "--slug", "x"],
      ["doctor", ...AWS],
    ]) {
      const { code, stderr } = await cli(args, { env: WITH_IMAGE });
      expect({ args, code, reached: stderr.includes(reached) }).toEqual({ args, code: 1, reached: true });
    }
  });
});

describe("leases", () => {
  test("an unknown lease is exit 4", async () => {
    for (const args of [
      ["stop", "nope"],
      ["status", "--id", "nope"],
      ["pause", "nope"],
      ["run", "--id", "nope", "--", "true"],
    ]) {
      const { code, stderr } = await cli([args[0] as string, ...AWS, ...args.slice(1)], {
        env: WITH_IMAGE,
      });
      expect({ args, code }).toEqual({ args, code: 4 });
      expect(stderr).toContain("error: aws-lambda-microvm lease not found: nope");
    }
  });

  test("a lease in another region is not found here; the hint names its region and the flag", async () => {
    const { code, stderr } = await cli(["stop", "west-lease"]);
    expect(code).toBe(4);
    expect(stderr).toContain("error: aws-lambda-microvm lease not found: west-lease");
    expect(stderr).toContain("is in us-west-2, not eu-west-1; add --aws-lambda-microvm-region us-west-2");
    const there = await cli(["stop", "west-lease", "--aws-lambda-microvm-region", "us-west-2"]);
    expect(there.stderr).toContain(reached);
    const viaEnv = await cli(["stop", "west-lease"], { env: { AWS_REGION: "us-west-2" } });
    expect(viaEnv.stderr).toContain(reached);
  });

  test("--id and a positional together, two positionals, or none at all are usage errors", async () => {
    for (const args of [["stop", "--id", "a", "b"], ["pause", "a", "b"], ["status"], ["stop"]]) {
      const { code, stderr } = await cli([...args, ...AWS]);
      expect({ args, code }).toEqual({ args, code: 2 });
      expect(stderr).toContain(`usage: crabbox ${args[0]} --id <lease-id-or-slug>`);
    }
  });

  test("a corrupt claim is exit 2 naming the file", async () => {
    const other = home();
    try {
      const path = other.write(join(other.stateDir, "claims", "cbx_cccccccccccc.json"), "{oops");
      const { code, stderr } = await other.run(["stop", "anything", ...AWS]);
      expect(code).toBe(2);
      expect(stderr).toContain(`claim file ${path} is corrupt`);
      // A directory where a claim file is expected fails for root too (no permission bits involved).
      other.write(path, "");
      rmSync(path);
      mkdirSync(path);
      const dir = await other.run(["stop", "anything", ...AWS]);
      expect(dir.code).toBe(2);
      expect(dir.stderr).toContain(`read claim ${path}:`);
    } finally {
      other.cleanup();
    }
  });
});

describe("run and warmup usage", () => {
  test.each([
    ["no command", ["run", ...AWS], "usage: crabbox run [flags] -- <command...>"],
    [
      "--slug with --id",
      ["run", ...AWS, "--id", "lambda-test", "--slug", "x", "--", "true"],
      "--slug only applies when creating a new lease",
    ],
    ["empty slug", ["warmup", ...AWS, "--slug", "!!"], "--slug must contain at least one letter or digit"],
    [
      "long slug",
      ["warmup", ...AWS, "--slug", "a".repeat(42)],
      "--slug must be 41 characters or fewer after normalization",
    ],
    ["bad ttl", ["run", ...AWS, "--ttl", "soon", "--", "true"], 'invalid duration "soon" for --ttl'],
    ["zero ttl", ["warmup", ...AWS, "--ttl", "0s"], "ttl must be positive"],
    [
      "short idle",
      ["warmup", ...AWS, "--idle-timeout", "30s"],
      "aws-lambda-microvm idle timeout must be at least 60s",
    ],
    [
      "amd64",
      ["run", ...AWS, "--arch", "amd64", "--", "true"],
      "provider=aws-lambda-microvm supports architecture=arm64 only",
    ],
    [
      "--desktop",
      ["run", ...AWS, "--desktop", "--", "true"],
      "desktop/VNC is not supported for provider=aws-lambda-microvm",
    ],
    [
      "--checksum",
      ["run", ...AWS, "--checksum", "--", "true"],
      "aws-lambda-microvm delegates sync; --checksum is not supported",
    ],
    [
      "--tailscale",
      ["run", ...AWS, "--tailscale", "--", "true"],
      "provider=aws-lambda-microvm does not support Tailscale options",
    ],
    [
      "bad wait timeout",
      ["status", ...AWS, "lambda-test", "--wait-timeout", "x"],
      'invalid duration "x" for --wait-timeout',
    ],
  ])("%s is exit 2", async (_name, args, message) => {
    const { code, stderr } = await cli(args, { env: WITH_IMAGE });
    expect(stderr).toContain(`error: ${message}`);
    expect(code).toBe(2);
  });

  test("accepted run flags reach the backend", async () => {
    const { code, stderr } = await cli(
      [
        "run",
        ...AWS,
        "--keep",
        "--slug",
        "My Slug",
        "--no-sync",
        "--shell",
        "--timing-json",
        "--allow-env",
        "A",
        "--allow-env=B,C",
        "--arch",
        "arm64",
        "--",
        "make",
        "test",
      ],
      { env: WITH_IMAGE },
    );
    expect(stderr).toContain(reached);
    expect(code).toBe(1);
  });
});
