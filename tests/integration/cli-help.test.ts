import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Home, home, requireBinary } from "./cli-harness.ts";

let h: Home;
beforeAll(() => {
  requireBinary();
  h = home();
});
afterAll(() => h.cleanup());

const commands = [
  "run",
  "warmup",
  "status",
  "list",
  "stop",
  "pause",
  "resume",
  "cleanup",
  "doctor",
  "config",
];

test("crabbox --help lists every command and exits 0", async () => {
  const { code, stdout } = await h.run(["--help"]);
  expect(code).toBe(0);
  for (const name of [...commands, "version"]) expect(stdout).toContain(`\n  ${name.padEnd(10)} `);
});

describe("--help of every command", () => {
  for (const args of [...commands.map((name) => [name]), ["release"], ["config", "show"]]) {
    test(args.join(" "), async () => {
      const { code, stdout, stderr } = await h.run([...args, "--help"]);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect(stdout).toContain("USAGE");
      expect(stdout).toContain("Examples:\n  crabbox ");
    });
  }

  for (const name of ["emulator", "version"]) {
    test(name, async () => {
      const { code, stdout } = await h.run([name, "--help"]);
      expect(code).toBe(0);
      expect(stdout).toContain("USAGE");
    });
  }

  test("provider flags on every provider command, lease lifetime flags on run and warmup", async () => {
    for (const name of [
      "run",
      "warmup",
      "status",
      "list",
      "stop",
      "pause",
      "resume",
      "cleanup",
      "doctor",
      "config",
    ]) {
      const { stdout } = await h.run([name, "--help"]);
      for (const flag of [
        "--provider",
        "--aws-lambda-microvm-region",
        "--aws-lambda-microvm-image",
        "--aws-lambda-microvm-endpoint",
      ]) {
        expect({ name, has: stdout.includes(flag) }).toEqual({ name, has: true });
      }
      const lifetime = name === "run" || name === "warmup";
      expect({ name, ttl: stdout.includes("--ttl") }).toEqual({ name, ttl: lifetime });
    }
  });
});

describe("unknown flags and commands are exit 2 with a suggestion", () => {
  test("a typo in run's own flags never reaches the remote command", async () => {
    const { code, stderr } = await h.run(["run", "--kep", "--", "true"]);
    expect(code).toBe(2);
    expect(stderr).toContain("error: unknown flag --kep for 'crabbox run'");
    expect(stderr).toContain("did you mean --keep?");
  });

  test("on other commands", async () => {
    const { code, stderr } = await h.run(["stop", "--aws-lambda-microvm-forget-mising", "x"]);
    expect(code).toBe(2);
    expect(stderr).toContain("unknown flag --aws-lambda-microvm-forget-mising");
    expect(stderr).toContain("did you mean --aws-lambda-microvm-forget-missing?");
  });

  test("an unknown command", async () => {
    const { code, stderr } = await h.run(["stauts"]);
    expect(code).toBe(2);
    expect(stderr).toContain("did you mean 'crabbox status'?");
  });

  test("an unknown config subcommand", async () => {
    const { code, stderr } = await h.run(["config", "shwo"]);
    expect(code).toBe(2);
    expect(stderr).toContain("did you mean 'crabbox config show'?");
  });
});

describe("--debug", () => {
  test("before the command it shows the stack", async () => {
    const { code, stderr } = await h.run([
      "--debug",
      "run",
      "--provider",
      "aws-lambda-microvm",
      "--",
      "true",
    ]);
    expect(code).toBe(3);
    expect(stderr).toMatch(/\n\s+at /);
  });

  test("inside run's remote command it belongs to that command", async () => {
    for (const args of [
      ["run", "--provider", "aws-lambda-microvm", "echo", "--debug"],
      ["run", "--provider", "aws-lambda-microvm", "--", "echo", "--debug"],
    ]) {
      const { code, stderr } = await h.run(args);
      expect(code).toBe(3);
      expect(stderr).not.toMatch(/\n\s+at /);
    }
  });

  test("remote words after the command are never parsed, not even --help", async () => {
    const { code, stderr, stdout } = await h.run(["run", "bun", "test", "--help"]);
    expect(stdout).toBe("");
    expect(code).toBe(2);
    expect(stderr).toContain("no provider selected");
  });
});
