import { describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configPermissionCheck, findExecutable, toolCheck } from "../../../src/core/doctor.ts";
import {
  doctorJson,
  doctorText,
  listingObject,
  listingText,
  statusJson,
  statusText,
} from "../../../src/core/views.ts";

const status = {
  id: "cbx_0123456789ab",
  slug: "lambda-test",
  provider: "aws-lambda-microvm",
  target: "linux",
  state: "running",
  serverId: "mvm-1",
  serverType: "1.0",
  host: "abc.lambda-microvm.eu-west-1.on.aws",
  network: "public",
  labels: { z: "1", a: "2" },
  ready: true,
};

describe("status", () => {
  test("JSON has upstream's fields in order, labels sorted", () => {
    const parsed = JSON.parse(statusJson(status));
    expect(Object.keys(parsed)).toEqual([
      "id",
      "slug",
      "provider",
      "target",
      "state",
      "serverId",
      "serverType",
      "host",
      "network",
      "sshHost",
      "sshUser",
      "sshPort",
      "sshKey",
      "labels",
      "hasHost",
      "ready",
    ]);
    expect(Object.keys(parsed.labels)).toEqual(["a", "z"]);
    expect(statusJson(status)).not.toContain("\n");
  });

  test("text line", () => {
    expect(statusText(status)).toBe(
      "cbx_0123456789ab slug=lambda-test provider=aws-lambda-microvm target=linux windows_mode=- state=running type=1.0 host=abc.lambda-microvm.eu-west-1.on.aws pond=- network=public ready=true has_host=false idle_for=- idle_timeout=- expires=-",
    );
  });
});

test("list entries keep upstream's capitalised keys", () => {
  const listing = {
    cloudId: "mvm-1",
    name: "api",
    status: "running",
    imageVersion: "1",
    endpoint: "e",
    labels: { lease: "cbx_0123456789ab", slug: "api", keep: "true", target: "linux" },
  };
  expect(Object.keys(listingObject("aws-lambda-microvm", listing))).toEqual([
    "CloudID",
    "Provider",
    "HostID",
    "id",
    "name",
    "status",
    "labels",
    "public_net",
    "private_net",
    "server_type",
  ]);
  expect(listingText(listing)).toBe(
    `${"mvm-1".padEnd(20)} ${"api".padEnd(28)} ${"running".padEnd(12)} ${"1".padEnd(14)} ${"e".padEnd(15)} lease=cbx_0123456789ab slug=api keep=true target=linux`,
  );
});

describe("doctor", () => {
  test("JSON lifts provider from details and drops empty parts; ok is false on failed/missing", () => {
    const text = doctorJson("aws-lambda-microvm", [
      { status: "ok", check: "provider-selection", message: "m", details: { source: "flag", provider: "p" } },
      { status: "missing", check: "tar" },
    ]);
    expect(JSON.parse(text)).toEqual({
      ok: false,
      provider: "aws-lambda-microvm",
      checks: [
        {
          status: "ok",
          check: "provider-selection",
          provider: "p",
          message: "m",
          details: { provider: "p", source: "flag" },
        },
        { status: "missing", check: "tar" },
      ],
    });
    expect(doctorText({ status: "ok", check: "git", message: "/usr/bin/git" })).toBe(
      "ok      git      /usr/bin/git",
    );
    expect(doctorText({ status: "skip", check: "pond" })).toBe("skip    pond");
  });

  test("tools are found on PATH", () => {
    const dir = mkdtempSync(join(tmpdir(), "crabbox-path-"));
    try {
      writeFileSync(join(dir, "tool"), "#!/bin/sh\n");
      chmodSync(join(dir, "tool"), 0o755);
      mkdirSync(join(dir, "adir"));
      expect(findExecutable("tool", { PATH: `/nonexistent:${dir}` })).toBe(join(dir, "tool"));
      expect(toolCheck("adir", { PATH: dir }).status).toBe("missing");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("config permission check: group/world access fails, 0600 passes, no file no check", () => {
    const dir = mkdtempSync(join(tmpdir(), "crabbox-perm-"));
    try {
      const file = join(dir, "c.yaml");
      expect(configPermissionCheck({ CRABBOX_CONFIG: file }, dir)).toBeUndefined();
      writeFileSync(file, "ttl: 1h\n");
      chmodSync(file, 0o644);
      expect(configPermissionCheck({ CRABBOX_CONFIG: file }, dir)).toEqual({
        status: "failed",
        check: "config",
        message: `${file}: permissions 0644 want 0600`,
      });
      chmodSync(file, 0o600);
      expect(configPermissionCheck({ CRABBOX_CONFIG: file }, dir)?.status).toBe("ok");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
