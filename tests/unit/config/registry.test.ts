import { expect, test } from "bun:test";
import { CrabboxError } from "../../../src/core/errors.ts";
import { hasFeature } from "../../../src/providers/provider.ts";
import { getProvider, noProviderSelected, providerNames } from "../../../src/providers/registry.ts";

function failure(fn: () => unknown): CrabboxError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CrabboxError) return error;
    throw error;
  }
  throw new Error("expected a CrabboxError");
}

test("aws-lambda-microvm is registered with upstream's spec", () => {
  expect(providerNames()).toEqual(["aws-lambda-microvm"]);
  const { spec } = getProvider(" AWS-Lambda-MicroVM ");
  expect(spec).toMatchObject({ name: "aws-lambda-microvm", family: "aws", kind: "delegated-run" });
  expect(spec.targets).toEqual([{ os: "linux", arch: "arm64" }]);
  for (const feature of ["archive-sync", "pause-resume", "cleanup", "run-session"] as const) {
    expect(hasFeature(spec, feature)).toBe(true);
  }
});

test("an unknown provider is exit 2 listing the ones that exist, with a suggestion", () => {
  const error = failure(() => getProvider("aws-lambda-microvms"));
  expect(error.exitCode).toBe(2);
  expect(error.message).toBe(
    'unknown provider "aws-lambda-microvms"; this crabbox supports: aws-lambda-microvm',
  );
  expect(error.hint).toBe("did you mean --provider aws-lambda-microvm?");
});

test("no provider selected is exit 2", () => {
  const error = failure(noProviderSelected);
  expect(error.exitCode).toBe(2);
  expect(error.message).toContain("no provider selected; use --provider <name>, set CRABBOX_PROVIDER");
});

test("the backend loads lazily and implements every lifecycle function", async () => {
  const backend = await getProvider("aws-lambda-microvm").backend();
  for (const name of ["warmup", "run", "status", "list", "stop", "pause", "resume", "cleanup", "doctor"]) {
    expect(typeof (backend as unknown as Record<string, unknown>)[name]).toBe("function");
  }
});
