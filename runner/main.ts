export async function main(_argv: string[]): Promise<number> {
  process.stderr.write("runner is being built\n");
  return 1;
}
