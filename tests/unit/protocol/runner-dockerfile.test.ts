/** The shipped runner/Dockerfile (never built here: no Docker engine) and the parser that reads it. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../../../scripts/bun-runtime.ts";
import { parseRunnerDockerfile } from "../../../src/image/dockerfile.ts";

describe("runner/Dockerfile", () => {
  const parsed = parseRunnerDockerfile(readFileSync(join(repoRoot, "runner/Dockerfile"), "utf8"));

  test("builds on the AL2023 minimal MicroVM base", () => {
    expect(parsed.from).toBe("public.ecr.aws/lambda/microvms:al2023-minimal");
  });

  test("installs bash, git, tar, gzip and ca-certificates", () => {
    const install = parsed.runs.find((run) => run.includes(" install "));
    for (const pkg of ["bash", "git", "tar", "gzip", "ca-certificates"]) {
      expect(install?.split(/[\s;]+/)).toContain(pkg);
    }
  });

  test("copies the prebuilt runner and starts it in exec form on :8080", () => {
    const copy = parsed.copies.find((entry) => entry.sources.includes("crabbox-runner"));
    expect(copy?.dest).toBe("/usr/local/bin/crabbox-runner");
    expect(parsed.cmd).toEqual(["/usr/local/bin/crabbox-runner", "--listen", ":8080"]);
    expect(parsed.entrypoint).toBeUndefined();
  });

  test("exposes 8080 and works in /workspace/crabbox", () => {
    expect(parsed.exposes).toEqual([8080]);
    expect(parsed.workdir).toBe("/workspace/crabbox");
  });
});

describe("parseRunnerDockerfile", () => {
  test("reads the final stage, JSON forms with spaces, flags, shell-form CMD and ENV", () => {
    const parsed = parseRunnerDockerfile(
      [
        "# syntax=docker/dockerfile:1",
        "FROM golang:1.22 AS build",
        "RUN go build -o /out/app",
        "FROM debian:12",
        'ENV A=1 B="two words"',
        'COPY --from=build --chmod=755 ["/out/app", "/usr/local/bin/my app"]',
        "ADD a b /opt/",
        "WORKDIR /srv",
        "WORKDIR data",
        "EXPOSE 8080/tcp 9000",
        "RUN apt-get update && \\",
        "    apt-get install -y curl",
        'CMD ["/usr/local/bin/my app", "say \\"hi\\""]',
      ].join("\n"),
    );
    expect(parsed.from).toBe("debian:12");
    expect(parsed.copies).toEqual([
      { sources: ["/out/app"], dest: "/usr/local/bin/my app", from: "build", chmod: "755" },
      { sources: ["a", "b"], dest: "/opt/" },
    ]);
    expect(parsed.cmd).toEqual(["/usr/local/bin/my app", 'say "hi"']);
    expect(parsed.workdir).toBe("/srv/data");
    expect(parsed.exposes).toEqual([8080, 9000]);
    expect(parsed.env).toEqual({ A: "1", B: "two words" });
    expect(parsed.runs).toHaveLength(1);
    expect(parsed.runs[0]).toContain("apt-get install -y curl");
    expect(parseRunnerDockerfile("FROM x\nCMD run --fast").cmd).toEqual(["/bin/sh", "-c", "run --fast"]);
  });

  test("refuses a Dockerfile without FROM or without a command", () => {
    expect(() => parseRunnerDockerfile("RUN true\n")).toThrow(/no FROM/);
    expect(() => parseRunnerDockerfile("FROM x\nRUN true\n")).toThrow(/no CMD or ENTRYPOINT/);
    expect(() => parseRunnerDockerfile('FROM x\nEXPOSE http\nCMD ["a"]')).toThrow(/not a port/);
  });
});
