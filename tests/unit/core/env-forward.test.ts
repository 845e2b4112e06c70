import { describe, expect, test } from "bun:test";
import {
  describeEnvVar,
  describeForwardedEnv,
  envNameAllowed,
  resolveEnvAllow,
  selectForwardedEnv,
  withReservedEnv,
} from "../../../src/core/env-forward.ts";
import { CrabboxError, ExitCode } from "../../../src/core/errors.ts";

describe("resolveEnvAllow", () => {
  test("defaults to CI and NODE_OPTIONS", () => {
    expect(resolveEnvAllow({})).toEqual({ entries: ["CI", "NODE_OPTIONS"], explicit: false });
  });

  test("env.allow replaces the default; --allow-env appends (comma lists, deduplicated)", () => {
    expect(resolveEnvAllow({ configAllow: ["FOO", " BAR "], flagAllow: ["BAZ,FOO", "QUX_*"] })).toEqual({
      entries: ["FOO", "BAR", "BAZ", "QUX_*"],
      explicit: true,
    });
  });

  test("CRABBOX_ENV_ALLOW replaces everything before it and counts as explicit", () => {
    expect(resolveEnvAllow({ configAllow: ["FOO"], envAllowVar: "ONE, TWO" })).toEqual({
      entries: ["ONE", "TWO"],
      explicit: true,
    });
    expect(resolveEnvAllow({ configAllow: ["FOO"], envAllowVar: "  " }).entries).toEqual(["FOO"]);
  });

  test("invalid names and a bare * are usage errors naming the source", () => {
    for (const [inputs, where] of [
      [{ flagAllow: ["1BAD"] }, "--allow-env"],
      [{ envAllowVar: "OK,BAD-NAME" }, "CRABBOX_ENV_ALLOW"],
      [{ configAllow: ["*"] }, "env.allow"],
    ] as const) {
      try {
        resolveEnvAllow(inputs);
        throw new Error("expected a usage error");
      } catch (error) {
        expect(error).toBeInstanceOf(CrabboxError);
        expect((error as CrabboxError).exitCode).toBe(ExitCode.usage);
        expect((error as CrabboxError).message).toContain(where);
      }
    }
  });
});

describe("selection", () => {
  test("exact and prefix matches, case-sensitive, valid names only", () => {
    expect(envNameAllowed("CI", ["CI"])).toBe(true);
    expect(envNameAllowed("ci", ["CI"])).toBe(false);
    expect(envNameAllowed("MYAPP_X", ["MYAPP_*"])).toBe(true);
    expect(envNameAllowed("MYAPPX", ["MYAPP_*"])).toBe(false);
    expect(envNameAllowed("BAD-NAME", ["BAD-*", "BAD*"])).toBe(false);
  });

  test("set names are forwarded (empty counts as set), reserved names never come from the local env", () => {
    const env = { CI: "", NODE_OPTIONS: "--x", SECRET: "s", CRABBOX_RUN_ID: "local", UNSET: undefined };
    expect(selectForwardedEnv(env, ["CI", "NODE_OPTIONS", "CRABBOX_*", "UNSET"])).toEqual({
      CI: "",
      NODE_OPTIONS: "--x",
    });
  });

  test("reserved metadata is added last and wins", () => {
    const vars = withReservedEnv(
      { CI: "1", crabbox_slug: "mine" },
      { leaseId: "", runId: "run_0123456789ab", slug: "s" },
    );
    expect(vars).toEqual({
      CI: "1",
      CRABBOX_LEASE_ID: "",
      CRABBOX_RUN_ID: "run_0123456789ab",
      CRABBOX_SLUG: "s",
    });
  });
});

describe("summary", () => {
  test("values never appear; secrets show only their length", () => {
    const line = describeForwardedEnv(
      { NODE_OPTIONS: "--max-old-space-size=4096", API_TOKEN: "hunter2", CI: "", CRABBOX_LEASE_ID: "" },
      ["CI"],
    );
    expect(line).toBe(
      "env forwarding provider=aws-lambda-microvm behavior=forwarded vars=API_TOKEN=set len=7 secret=true,CI=empty,CRABBOX_LEASE_ID=empty,NODE_OPTIONS=set",
    );
    expect(line).not.toContain("hunter2");
    expect(line).not.toContain("4096");
  });

  test("secret-shaped names", () => {
    for (const name of [
      "AWS_ACCESS_KEY_ID",
      "GH_TOKEN",
      "DB_PASSWORD",
      "MY_PASS",
      "X_CREDENTIALS",
      "AUTH_HEADER",
      "my_secret",
    ]) {
      expect(describeEnvVar(name, "v")).toContain("secret=true");
    }
    expect(describeEnvVar("PATHLIKE", "v")).toBe("PATHLIKE=set");
  });

  test("an empty map names the allow-list", () => {
    expect(describeForwardedEnv({}, ["CI", "X_*"])).toBe(
      "env forwarding provider=aws-lambda-microvm behavior=forwarded matched=none allow=CI,X_*",
    );
  });
});
