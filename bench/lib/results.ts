import { mkdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Figure, RunResult } from "./types.ts";

/** `bench/results/<date>-<host>.json` and `.md`: the record of one `npm run bench`. */

function resultBaseName(result: RunResult): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9_.-]/g, "_")
      .slice(0, 40) || "host";
  return `${result.date.slice(0, 10)}-${host}${result.quick ? "-quick" : ""}`;
}

function round(value: number, unit: string): string {
  if (!Number.isFinite(value)) return String(value);
  if (unit === "bytes" || unit === "count") return String(Math.round(value));
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

function figureRow(f: Figure): string {
  const value = `${round(f.subject.value, f.unit)} ${f.unit}`;
  const baseline = f.baseline ? `${round(f.baseline.value, f.unit)} ${f.unit} (${f.baseline.label})` : "—";
  const ratio = f.ratio === undefined ? "—" : `${f.ratio.toFixed(2)}×`;
  const goal = f.goal ? `${f.goal.description} ${f.goal.pass ? "✅" : "❌"}` : "—";
  return `| ${cell(f.title)} | ${cell(value)} | ${cell(baseline)} | ${ratio} | ${cell(goal)} |`;
}

export function markdown(result: RunResult): string {
  const lines = [
    `# crabbox bench — ${result.date}`,
    "",
    `host ${result.host} (${result.platform}-${result.arch}, ${result.cpus} cpus), bun ${result.bun}, commit ${result.commit}, ${result.runs} runs per figure${result.quick ? ", quick" : ""}.`,
    "Each value is the median of its runs; each baseline was measured in the same run, interleaved.",
    "",
    "| figure | value | baseline | ratio | goal |",
    "|---|---|---|---|---|",
  ];
  for (const bench of result.benchmarks) {
    if (bench.error) lines.push(`| ${cell(bench.title)} | error: ${cell(bench.error)} | | | ❌ |`);
    for (const f of bench.figures) lines.push(figureRow(f));
  }
  lines.push("");
  return lines.join("\n");
}

/** Writes both files; returns their paths. */
export function writeResults(dir: string, result: RunResult): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, resultBaseName(result));
  const json = `${base}.json`;
  const md = `${base}.md`;
  writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(md, markdown(result));
  return { json, md };
}
