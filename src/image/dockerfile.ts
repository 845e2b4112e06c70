/**
 * Reads the parts of a MicroVM image Dockerfile crabbox cares about: the base image, what is copied
 * where, the command that starts the runner, the workdir and the exposed ports. The emulator uses it
 * to find an image's runner (COPY source -> CMD path); a unit test uses it to check the shipped
 * Dockerfile. dockerfile-ast does the lexing (continuations, comments, escape directive, stages,
 * flags); JSON forms are decoded with JSON.parse because dockerfile-ast's JSON strings drop
 * whitespace inside quoted values ("say hi" comes back as "sayhi").
 */
import { DockerfileParser } from "dockerfile-ast";
import { CrabboxError } from "../core/errors.ts";

export interface DockerfileCopy {
  sources: string[];
  dest: string;
  /** `--from=<stage>` when copying out of another build stage. */
  from?: string;
  /** `--chmod=` as written. */
  chmod?: string;
}

export interface RunnerDockerfile {
  /** Base image of the final stage, as written. */
  from: string;
  /** COPY and ADD instructions of the final stage, in order. */
  copies: DockerfileCopy[];
  /** The final CMD in exec form; a shell-form CMD becomes ["/bin/sh", "-c", text] as Docker does. */
  cmd: string[];
  /** ENTRYPOINT in exec form when present (the process is entrypoint + cmd). */
  entrypoint?: string[];
  /** The final WORKDIR, resolved to an absolute path. */
  workdir?: string;
  exposes: number[];
  /** RUN commands of the final stage, continuation lines joined. */
  runs: string[];
  env: Record<string, string>;
}

export function parseRunnerDockerfile(text: string): RunnerDockerfile {
  const dockerfile = DockerfileParser.parse(text);
  const instructions = dockerfile.getInstructions();
  const lastFrom = instructions.findLastIndex((instruction) => instruction.getKeyword() === "FROM");
  if (lastFrom === -1) throw invalid("it has no FROM instruction");
  const stage = instructions.slice(lastFrom);

  const result: RunnerDockerfile = { from: "", copies: [], cmd: [], exposes: [], runs: [], env: {} };
  let cmd: string[] | undefined;
  for (const instruction of stage) {
    const keyword = instruction.getKeyword();
    const content = instruction.getArgumentsContent() ?? "";
    switch (keyword) {
      case "FROM": {
        const image = instruction.getArguments()[0]?.getValue();
        if (!image) throw invalid("FROM names no image");
        result.from = image;
        break;
      }
      case "COPY":
      case "ADD": {
        const flags = flagsOf(instruction);
        const words = execForm(content) ?? positional(instruction);
        if (words.length < 2) throw invalid(`${keyword} needs a source and a destination: ${content}`);
        const copy: DockerfileCopy = { sources: words.slice(0, -1), dest: words[words.length - 1] as string };
        if (flags.from !== undefined) copy.from = flags.from;
        if (flags.chmod !== undefined) copy.chmod = flags.chmod;
        result.copies.push(copy);
        break;
      }
      case "CMD":
        cmd = execForm(content) ?? ["/bin/sh", "-c", content];
        break;
      case "ENTRYPOINT":
        result.entrypoint = execForm(content) ?? ["/bin/sh", "-c", content];
        break;
      case "WORKDIR": {
        const path = (
          instruction as unknown as { getAbsolutePath(): string | null | undefined }
        ).getAbsolutePath();
        if (!path) throw invalid(`WORKDIR ${content} is not usable`);
        result.workdir = path;
        break;
      }
      case "EXPOSE":
        for (const argument of instruction.getArguments()) {
          const port = Number(argument.getValue().replace(/\/(tcp|udp)$/i, ""));
          if (!Number.isInteger(port) || port < 1 || port > 65535) {
            throw invalid(`EXPOSE ${argument.getValue()} is not a port`);
          }
          result.exposes.push(port);
        }
        break;
      case "RUN":
        result.runs.push(content);
        break;
      case "ENV":
        for (const property of (
          instruction as unknown as { getProperties(): { getName(): string; getValue(): string | null }[] }
        ).getProperties()) {
          result.env[property.getName()] = property.getValue() ?? "";
        }
        break;
      default:
        break;
    }
  }
  if (cmd === undefined && result.entrypoint === undefined) throw invalid("it has no CMD or ENTRYPOINT");
  result.cmd = cmd ?? [];
  return result;
}

function invalid(why: string): CrabboxError {
  return new CrabboxError(`invalid Dockerfile: ${why}`);
}

/** The JSON array form, or undefined when the instruction is in shell form. */
function execForm(content: string): string[] | undefined {
  if (!content.trimStart().startsWith("[")) return undefined;
  try {
    const parsed: unknown = JSON.parse(content);
    if (Array.isArray(parsed) && parsed.every((word) => typeof word === "string")) return parsed;
  } catch {
    // Docker treats an unparsable "[..." as shell form too.
  }
  return undefined;
}

interface FlagLike {
  getName(): string;
  getValue(): string | null;
}

function flagsOf(instruction: unknown): Record<string, string> {
  const getFlags = (instruction as { getFlags?: () => FlagLike[] }).getFlags;
  const flags: Record<string, string> = {};
  for (const flag of getFlags?.call(instruction) ?? []) flags[flag.getName()] = flag.getValue() ?? "";
  return flags;
}

/** Arguments after the flags (dockerfile-ast's ModifiableInstruction already drops them). */
function positional(instruction: { getArguments(): { getValue(): string }[] }): string[] {
  return instruction
    .getArguments()
    .map((argument) => argument.getValue())
    .filter((word) => !word.startsWith("--"));
}
