import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * Seeded generated corpora: the same seed gives byte-identical trees on every machine, so figures
 * from two runs are comparable. Text files are source-like (identifiers, indentation, repeated
 * lines — gzip shrinks them about 3–4×, as it does real code); a fraction are random bytes,
 * standing in for images and fixtures that no compressor shrinks.
 */

/** sfc32: small, fast, good enough for test data, and identical in every JS runtime. */
export function rng(seed: number): () => number {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) next();
  return next;
}

export interface CorpusSpec {
  files: number;
  /** Total content bytes (±1%). */
  bytes: number;
  seed: number;
  /** Share of files that are random bytes (default 0.05). */
  binaryFraction?: number;
}

export interface Corpus {
  root: string;
  /** Relative paths, in generation order. */
  paths: string[];
  bytes: number;
}

const EXTENSIONS = [".ts", ".ts", ".ts", ".js", ".json", ".md", ".go", ".py", ".css", ".txt"];

function vocabulary(random: () => number, size: number): string[] {
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const words: string[] = [];
  for (let i = 0; i < size; i++) {
    const length = 2 + Math.floor(random() * 10);
    let word = "";
    for (let j = 0; j < length; j++) word += letters[Math.floor(random() * 26)];
    words.push(word);
  }
  return words;
}

/** Sizes with a long tail (most files small, a few large), scaled to the requested total. */
function fileSizes(random: () => number, count: number, total: number): number[] {
  const raw: number[] = [];
  for (let i = 0; i < count; i++) {
    // Box–Muller normal → log-normal.
    const u = Math.max(random(), 1e-9);
    const v = random();
    const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    raw.push(Math.exp(normal * 1.1));
  }
  const sum = raw.reduce((a, b) => a + b, 0);
  return raw.map((value) => Math.max(1, Math.round((value / sum) * total)));
}

function textContent(random: () => number, words: string[], common: string[], size: number): Uint8Array {
  const lines: string[] = [];
  let length = 0;
  const punctuation = [" = ", "(", ", ", ".", "); ", " => ", ": ", " + ", "[", "] "];
  while (length < size) {
    let line: string;
    const roll = random();
    if (roll < 0.6) {
      // Boilerplate (imports, braces, returns) repeats across a codebase.
      line = common[Math.floor(common.length * random() ** 2)] as string;
    } else {
      const indent = "  ".repeat(Math.floor(random() * 4));
      const count = 2 + Math.floor(random() * 6);
      line = indent;
      for (let i = 0; i < count; i++) {
        // Zipf-like: a few identifiers are everywhere, as in real code.
        line += words[Math.floor(words.length * random() ** 4)];
        if (i < count - 1) line += punctuation[Math.floor(random() * punctuation.length)];
      }
      if (random() < 0.1) line += ` ${Math.floor(random() * 1000)}`;
      line += ";\n";
    }
    lines.push(line);
    length += line.length;
  }
  return new TextEncoder().encode(lines.join("")).subarray(0, size);
}

/** Lines that recur everywhere (imports, closing braces, returns). */
function commonLines(random: () => number, words: string[], count: number): string[] {
  const lines = ["}\n", "  }\n", "\n", "\n", "    return;\n", "  return result;\n", "});\n"];
  while (lines.length < count) {
    const a = words[Math.floor(random() * 200)];
    const b = words[Math.floor(random() * 200)];
    const shapes = [
      `import { ${a} } from "./${b}.ts";\n`,
      `  const ${a} = await ${b}(options);\n`,
      `    if (${a} === undefined) return ${b};\n`,
      `export function ${a}(${b}: string): void {\n`,
      `  // ${a} ${b} before the ${words[Math.floor(random() * 200)]} is read\n`,
    ];
    lines.push(shapes[Math.floor(random() * shapes.length)] as string);
  }
  return lines;
}

function binaryContent(random: () => number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 4) {
    const value = Math.floor(random() * 4294967296);
    out[i] = value & 0xff;
    if (i + 1 < size) out[i + 1] = (value >>> 8) & 0xff;
    if (i + 2 < size) out[i + 2] = (value >>> 16) & 0xff;
    if (i + 3 < size) out[i + 3] = (value >>> 24) & 0xff;
  }
  return out;
}

/** Directories at depth 1–4, about eight files to a directory, as in a real source tree. */
function directories(random: () => number, count: number, words: string[]): string[] {
  const dirs: string[] = [];
  for (let i = 0; i < count; i++) {
    // Most directories hang off an earlier one, so the tree has real depth and shared parents.
    const parent = dirs.length > 0 && random() < 0.7 ? dirs[Math.floor(random() * dirs.length)] : undefined;
    const name = `${words[Math.floor(random() * 200)]}${i}`;
    const dir = parent && parent.split("/").length < 4 ? `${parent}/${name}` : `pkg${i % 12}/${name}`;
    dirs.push(dir);
  }
  return dirs;
}

/** `dir/name.ext`, unique per index. */
function pathFor(random: () => number, index: number, words: string[], dirs: string[]): string {
  const dir = dirs[Math.floor(random() * dirs.length)] as string;
  const ext = EXTENSIONS[Math.floor(random() * EXTENSIONS.length)] as string;
  return `${dir}/${words[Math.floor(random() * words.length)]}_${index}${ext}`;
}

/** Writes the corpus under `root` (created); returns its paths. */
export function generateCorpus(root: string, spec: CorpusSpec): Corpus {
  const random = rng(spec.seed);
  const words = vocabulary(random, 3000);
  const common = commonLines(random, words, 400);
  const sizes = fileSizes(random, spec.files, spec.bytes);
  const dirs = directories(random, Math.max(1, Math.round(spec.files / 8)), words);
  const binaryFraction = spec.binaryFraction ?? 0.05;
  const paths: string[] = [];
  let bytes = 0;
  for (let i = 0; i < spec.files; i++) {
    const path = pathFor(random, i, words, dirs);
    const size = sizes[i] as number;
    const content =
      random() < binaryFraction ? binaryContent(random, size) : textContent(random, words, common, size);
    const absolute = join(root, path);
    mkdirSync(dirname(absolute), { recursive: true });
    writeFileSync(absolute, content);
    paths.push(path);
    bytes += content.length;
  }
  return { root, paths, bytes };
}

const GIT_ENV = {
  GIT_AUTHOR_NAME: "bench",
  GIT_AUTHOR_EMAIL: "bench@example.invalid",
  GIT_COMMITTER_NAME: "bench",
  GIT_COMMITTER_EMAIL: "bench@example.invalid",
  GIT_CONFIG_NOSYSTEM: "1",
};

export function git(root: string, args: string[]): string {
  return execFileSync("git", args, {
    cwd: root,
    env: { ...process.env, ...GIT_ENV },
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
}

/** A generated corpus, committed: the checkout the sync benchmarks start from. */
export function commitCorpus(repo: string, spec: CorpusSpec): Corpus {
  const corpus = generateCorpus(repo, spec);
  git(repo, ["add", "-A"]);
  git(repo, ["commit", "-q", "-m", "corpus"]);
  return corpus;
}
