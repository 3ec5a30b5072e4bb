/** Command-line helpers shared by the long-run scripts (fuzzers). */

/** `--name`'s value as an integer, `fallback` when absent; a clear error naming the flag otherwise. */
export function intOption(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n)) throw new Error(`--${name} must be an integer (got ${text})`);
  return n;
}
