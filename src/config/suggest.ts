// "Did you mean" for misspelt keys, flags and values.

/** Lower-case, dashes as underscores, no leading dashes: `--Listen-Port` and `listen_port` compare equal. */
function normalize(word: string): string {
  return word.replace(/^-+/, '').toLowerCase().replaceAll('-', '_');
}

/** Optimal string alignment distance: edits, where swapping two neighbours counts as one. */
function distance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0].push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2][j - 2] + 1);
      rows[i].push(d);
    }
  }
  return rows[a.length][b.length];
}

/**
 * The candidate closest to `word`, if it is close enough to be a plausible typo: within `maxEdits` edits (default:
 * 1 for words of up to 4 characters, 2 up to 8, else 3).
 */
export function closest(word: string, candidates: Iterable<string>, maxEdits?: number): string | undefined {
  const target = normalize(word);
  const budget = maxEdits ?? (target.length <= 4 ? 1 : target.length <= 8 ? 2 : 3);
  let best: string | undefined;
  let bestDistance = budget + 1;
  for (const candidate of candidates) {
    const d = distance(target, normalize(candidate));
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** `'; did you mean "x"?'` or nothing, ready to append to a reason. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const match = closest(word, candidates);
  return match === undefined ? '' : `; did you mean ${JSON.stringify(match)}?`;
}
