import type { ArgsDef } from "citty";
import { usageError } from "./errors.ts";
import { closest } from "./suggest.ts";

interface FlagTable {
  /** Every spelling that takes a value (`--name value` or `--name=value`). */
  valued: Set<string>;
  /** Every boolean spelling, including `no-` negations. */
  booleans: Set<string>;
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function flagTable(args: ArgsDef): FlagTable {
  const table: FlagTable = { valued: new Set(), booleans: new Set(["help", "h"]) };
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    const alias = "alias" in def ? def.alias : undefined;
    const aliases = alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
    const spellings = [name, kebab(name), ...aliases];
    const target = def.type === "boolean" ? table.booleans : table.valued;
    for (const spelling of spellings) {
      target.add(spelling);
      if (def.type === "boolean") target.add(`no-${spelling}`);
    }
  }
  return table;
}

function flagName(token: string): string | undefined {
  if (!token.startsWith("-") || token === "-" || token === "--") return undefined;
  const body = token.replace(/^--?/, "");
  const eq = body.indexOf("=");
  return eq === -1 ? body : body.slice(0, eq);
}

export interface SplitArgv {
  /** Tokens crabbox parses itself. */
  own: string[];
  /** Tokens handed on untouched: a remote command, for `run`. */
  rest: string[];
}

/**
 * Splits a command's argv where crabbox's own flags end. With `passthrough`, the remote command
 * starts after `--` or at the first word that is not a flag or a flag's value (as upstream's Go
 * `flag` parsing), and everything from there on is never interpreted — not even `--help`.
 */
export function splitArgv(tokens: string[], args: ArgsDef, passthrough: boolean): SplitArgv {
  const table = flagTable(args);
  const own: string[] = [];
  let positionalsLeft = Object.values(args).filter((def) => def.type === "positional").length;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token === "--") {
      if (passthrough) return { own, rest: tokens.slice(i + 1) };
      own.push(...tokens.slice(i));
      return { own, rest: [] };
    }
    const name = flagName(token);
    if (name === undefined) {
      if (passthrough && positionalsLeft === 0) return { own, rest: tokens.slice(i) };
      positionalsLeft = Math.max(0, positionalsLeft - 1);
      own.push(token);
      continue;
    }
    own.push(token);
    if (table.valued.has(name) && !token.includes("=") && i + 1 < tokens.length) {
      own.push(tokens[i + 1] as string);
      i++;
    }
  }
  return { own, rest: [] };
}

/** Whether the user asked for help among crabbox's own tokens. */
export function wantsHelp(own: string[]): boolean {
  for (const token of own) {
    if (token === "--") return false;
    if (token === "--help" || token === "-h") return true;
  }
  return false;
}

/**
 * citty accepts unknown flags silently, which turns a typo like `--kep` into a run that
 * terminates the machine the user wanted to keep. Refuse them with a suggestion instead.
 */
export function assertKnownFlags(own: string[], args: ArgsDef, command: string): void {
  const table = flagTable(args);
  for (let i = 0; i < own.length; i++) {
    const token = own[i] as string;
    if (token === "--") return;
    const name = flagName(token);
    if (name === undefined) continue;
    if (table.valued.has(name)) {
      if (!token.includes("=")) {
        const value = own[i + 1];
        if (value === undefined)
          throw usageError(`flag --${name} needs a value`, `crabbox ${command} --help`);
        i++;
      }
      continue;
    }
    if (table.booleans.has(name)) {
      const value = token.includes("=") ? token.slice(token.indexOf("=") + 1) : undefined;
      if (value !== undefined && !/^(true|false|1|0)$/i.test(value)) {
        throw usageError(`flag --${name} is a switch; "${value}" is not true or false`);
      }
      continue;
    }
    const known = [...table.valued, ...table.booleans].filter((spelling) => spelling.length > 1);
    const guess = closest(name, known);
    const dashes = token.startsWith("--") ? "--" : "-";
    throw usageError(
      `unknown flag ${dashes}${name} for 'crabbox ${command}'`,
      guess
        ? `did you mean --${guess}? (crabbox ${command} --help lists every flag)`
        : `crabbox ${command} --help lists every flag`,
    );
  }
}
