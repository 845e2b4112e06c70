/**
 * `crabbox completion bash|zsh|fish` from the compiled binary: the bash script loads in bash and,
 * driven the way bash drives it (COMP_WORDS/COMP_CWORD, then _crabbox), offers the subcommands and
 * every --aws-lambda-microvm-* flag; zsh and fish parse theirs when those shells are installed.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { providerArgs } from "../../src/commands/_args.ts";
import { type Home, home, requireBinary } from "./cli-harness.ts";

let h: Home;
let script: string;

beforeAll(async () => {
  requireBinary();
  h = home();
  const result = await h.run(["completion", "bash"]);
  expect(result.code).toBe(0);
  script = h.write(join(h.root, "crabbox.bash"), result.stdout);
});
afterAll(() => h.cleanup());

/** What bash would offer for `line` (the cursor at its end). */
function complete(line: string): string[] {
  const driver = `
source "$1"
read -ra words <<<"$2"
[[ "$2" == *" " ]] && words+=("")
COMP_WORDS=("\${words[@]}")
COMP_CWORD=$((\${#words[@]} - 1))
COMPREPLY=()
_crabbox
printf '%s\\n' "\${COMPREPLY[@]}"
`;
  const result = spawnSync("bash", ["-c", driver, "bash", script, line], { encoding: "utf8", cwd: h.root });
  expect(result.status).toBe(0);
  return result.stdout.split("\n").filter(Boolean);
}

test("the script loads in bash and registers the completion", () => {
  const result = spawnSync("bash", ["-c", 'source "$1" && complete -p crabbox', "bash", script], {
    encoding: "utf8",
  });
  expect(result.status).toBe(0);
  expect(result.stdout).toContain("-F _crabbox");
});

test("top-level words are crabbox's commands", () => {
  const offered = complete("crabbox ");
  for (const name of [
    "run",
    "warmup",
    "status",
    "list",
    "stop",
    "cleanup",
    "doctor",
    "image",
    "completion",
  ]) {
    expect(offered).toContain(name);
  }
  expect(offered).not.toContain("__runner");
  expect(complete("crabbox st")).toEqual(["status", "stop"]);
});

test("every --aws-lambda-microvm-* flag completes for run", () => {
  const offered = complete("crabbox run --aws-lambda-microvm-");
  const expected = Object.keys(providerArgs)
    .filter((name) => name.startsWith("aws-lambda-microvm-"))
    .map((name) => `--${name}`);
  expect(expected.length).toBeGreaterThan(5);
  expect(offered.sort()).toEqual(expected.sort());
});

test("flag values: regions and providers; a flag's value does not count as a command", () => {
  expect(complete("crabbox run --aws-lambda-microvm-region ")).toContain("eu-west-1");
  expect(complete("crabbox warmup --provider ")).toEqual(["aws-lambda-microvm"]);
  expect(complete("crabbox --debug status --provider aws-lambda-microvm --")).toContain("--json");
});

test("subcommands of image and their own flags", () => {
  expect(complete("crabbox image ")).toEqual(["build", "list", "status"]);
  const flags = complete("crabbox image build --");
  for (const flag of [
    "--bucket",
    "--key",
    "--build-role-arn",
    "--base-image-arn",
    "--memory",
    "--wait",
    "--artifact",
  ]) {
    expect(flags).toContain(flag);
  }
  expect(complete("crabbox image build --memory ")).toContain("2048");
});

test("after run's remote command starts, crabbox offers nothing of its own", () => {
  expect(complete("crabbox run -- make ")).toEqual([]);
  expect(complete("crabbox run --provider aws-lambda-microvm make --")).toEqual([]);
});

test("an unknown shell is a usage error", async () => {
  const result = await h.run(["completion", "tcsh"]);
  expect(result.code).toBe(2);
  expect(result.stderr).toContain("one of bash, zsh, fish");
});

for (const shell of ["zsh", "fish"] as const) {
  const installed = !spawnSync(shell, ["--version"]).error;
  test.skipIf(!installed)(`the ${shell} script parses (${shell} -n)`, async () => {
    const result = await h.run(["completion", shell]);
    expect(result.code).toBe(0);
    const file = join(h.root, `crabbox.${shell}`);
    writeFileSync(file, result.stdout);
    const check = spawnSync(shell, ["-n", file], { encoding: "utf8" });
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
    expect(result.stdout).toContain("aws-lambda-microvm-image-version");
  });
}

test.skipIf(spawnSync("fish", ["--version"]).error !== undefined)(
  "fish completes image subcommands",
  async () => {
    const result = await h.run(["completion", "fish"]);
    const file = join(h.root, "crabbox.fish");
    writeFileSync(file, result.stdout);
    const offered = spawnSync("fish", ["-c", `source ${file}; complete -C 'crabbox image '`], {
      encoding: "utf8",
      env: { ...h.env, PATH: process.env.PATH ?? "" },
    });
    const names = offered.stdout.split("\n").map((line) => line.split("\t")[0]);
    expect(names).toEqual(expect.arrayContaining(["build", "list", "status"]));
  },
);
