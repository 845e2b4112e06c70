import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { argvToShellScript, displayCommand, displayShellArg, shellQuote } from "../../../src/core/shell.ts";

/** What /bin/sh makes of a script: each word of `printf '%s\n'` on its own line. */
function shellWords(script: string): string[] {
  const result = spawnSync("/bin/sh", [
    "-c",
    `set -- ${script}; for w in "$@"; do printf '%s\\0' "$w"; done`,
  ]);
  return result.stdout.toString("utf8").split("\0").slice(0, -1);
}

describe("shellQuote", () => {
  test("wraps in single quotes and escapes embedded quotes", () => {
    expect(shellQuote("plain")).toBe("'plain'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("")).toBe("''");
  });

  test("sh reads every quoted word back unchanged", () => {
    const words = ["a b", "it's", "$HOME", "`id`", "\\n", "*", "new\nline", "é ✓", "'", "''", "--flag=x"];
    expect(shellWords(words.map(shellQuote).join(" "))).toEqual(words);
  });
});

describe("argvToShellScript", () => {
  test("quotes every word, as upstream: printf runner-ok", () => {
    expect(argvToShellScript(["printf", "runner-ok"])).toBe("'printf' 'runner-ok'");
  });

  test("operators stay raw so pipelines and lists work", () => {
    expect(
      argvToShellScript(["make", "&&", "make", "test", "|", "tee", "log", ">", "out", "2>", "err"]),
    ).toBe("'make' && 'make' 'test' | 'tee' 'log' > 'out' 2> 'err'");
    expect(argvToShellScript(["a", "||", "b", ";", "c", "<", "in", ">>", "x", "2>>", "y"])).toBe(
      "'a' || 'b' ; 'c' < 'in' >> 'x' 2>> 'y'",
    );
  });

  test("NAME=value at command position is an assignment, elsewhere a quoted word", () => {
    expect(argvToShellScript(["FOO=bar baz", "BAR=1", "env", "X=2"])).toBe(
      "FOO='bar baz' BAR='1' 'env' 'X=2'",
    );
    expect(argvToShellScript(["true", "&&", "A=it's", "sh", "-c", "echo $A"])).toBe(
      "'true' && A='it'\\''s' 'sh' '-c' 'echo $A'",
    );
    expect(argvToShellScript(["1A=x", "cmd"])).toBe("'1A=x' 'cmd'");
  });

  test("the script runs the same argv under /bin/sh", () => {
    const argv = ["printf", "%s|%s|%s", "a b", "it's", "$NOPE"];
    const result = spawnSync("/bin/sh", ["-c", argvToShellScript(argv)]);
    expect(result.stdout.toString()).toBe("a b|it's|$NOPE");
  });

  test("assignments reach the command", () => {
    const result = spawnSync("/bin/sh", [
      "-c",
      argvToShellScript(["GREETING=hi there", "sh", "-c", 'printf "$GREETING"']),
    ]);
    expect(result.stdout.toString()).toBe("hi there");
  });
});

describe("display quoting", () => {
  test("safe words stay bare, others are quoted", () => {
    expect(displayShellArg("cbx_0123456789ab")).toBe("cbx_0123456789ab");
    expect(displayShellArg("--provider=aws-lambda-microvm")).toBe("--provider=aws-lambda-microvm");
    expect(displayShellArg("a/b.c:d@e")).toBe("a/b.c:d@e");
    expect(displayShellArg("two words")).toBe("'two words'");
    expect(displayShellArg("")).toBe("''");
    expect(displayCommand(["crabbox", "stop", "my lease"])).toBe("crabbox stop 'my lease'");
  });
});
