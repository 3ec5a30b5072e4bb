/**
 * SASLprep (RFC 4013) of a password, following what PostgreSQL does rather than the
 * letter of the RFC, because the SCRAM keys pgmux derives must equal the server's:
 *
 * - Pure ASCII is returned unchanged (even control characters).
 * - Otherwise: map non-ASCII spaces to ' ' and drop "commonly mapped to nothing"
 *   characters, then check the *mapped* string (PostgreSQL checks before normalising)
 *   for prohibited characters, unassigned code points and the bidi rule, then NFKC.
 * - If any check fails, or mapping leaves nothing, the password is used as is: PostgreSQL
 *   does the same (SCRAM is still possible, just without normalisation).
 *
 * Approximations: RFC 3454 table A.1 (unassigned in Unicode 3.2) is replaced by
 * \p{Cn} of Node's newer Unicode, and table D.2 (bidi "L") by letters and spacing marks
 * outside table D.1. Both only differ for characters added after Unicode 3.2 or for
 * mixed-direction passwords, where PostgreSQL might use the raw password while pgmux
 * normalises (a mismatch only if NFKC actually changes such a password).
 */

type Range = readonly [number, number];

/** C.1.2 non-ASCII space characters: mapped to U+0020. */
const NON_ASCII_SPACE: readonly Range[] = [
  [0x00a0, 0x00a0], [0x1680, 0x1680], [0x2000, 0x200b], [0x202f, 0x202f], [0x205f, 0x205f],
  [0x3000, 0x3000],
];

/** B.1 commonly mapped to nothing. */
const MAPPED_TO_NOTHING: readonly Range[] = [
  [0x00ad, 0x00ad], [0x034f, 0x034f], [0x1806, 0x1806], [0x180b, 0x180d], [0x200b, 0x200d],
  [0x2060, 0x2060], [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
];

/** Prohibited output, RFC 4013 §2.3: tables C.1.2, C.2.1, C.2.2, C.3 to C.9. */
const PROHIBITED: readonly Range[] = [
  [0x0000, 0x001f], [0x007f, 0x00a0], [0x0340, 0x0341], [0x06dd, 0x06dd], [0x070f, 0x070f],
  [0x1680, 0x1680], [0x180e, 0x180e], [0x2000, 0x200f], [0x2028, 0x202f], [0x205f, 0x2063],
  [0x206a, 0x206f], [0x2ff0, 0x2ffb], [0x3000, 0x3000], [0xd800, 0xf8ff], [0xfdd0, 0xfdef],
  [0xfeff, 0xfeff], [0xfff9, 0xffff], [0x1d173, 0x1d17a], [0xe0001, 0xe0001],
  [0xe0020, 0xe007f], [0xf0000, 0x10ffff],
];

/** D.1 characters with bidi property R or AL. */
const RAND_AL_CAT: readonly Range[] = [
  [0x05be, 0x05be], [0x05c0, 0x05c0], [0x05c3, 0x05c3], [0x05d0, 0x05ea], [0x05f0, 0x05f4],
  [0x061b, 0x061b], [0x061f, 0x061f], [0x0621, 0x063a], [0x0640, 0x064a], [0x066d, 0x066f],
  [0x0671, 0x06d5], [0x06dd, 0x06dd], [0x06e5, 0x06e6], [0x06fa, 0x06fe], [0x0700, 0x070d],
  [0x0710, 0x0710], [0x0712, 0x072c], [0x0780, 0x07a5], [0x07b1, 0x07b1], [0x200f, 0x200f],
  [0xfb1d, 0xfb1d], [0xfb1f, 0xfb28], [0xfb2a, 0xfb36], [0xfb38, 0xfb3c], [0xfb3e, 0xfb3e],
  [0xfb40, 0xfb41], [0xfb43, 0xfb44], [0xfb46, 0xfbb1], [0xfbd3, 0xfd3d], [0xfd50, 0xfd8f],
  [0xfd92, 0xfdc7], [0xfdf0, 0xfdfc], [0xfe70, 0xfe74], [0xfe76, 0xfefc],
];

const ASCII_ONLY = /^[\x00-\x7f]*$/;
const UNASSIGNED = /^\p{Cn}$/u;
const LEFT_TO_RIGHT = /^[\p{L}\p{Mc}]$/u;

function inRanges(cp: number, ranges: readonly Range[]): boolean {
  for (const [lo, hi] of ranges) if (cp >= lo && cp <= hi) return true;
  return false;
}

function isNoncharacter(cp: number): boolean {
  return (cp & 0xfffe) === 0xfffe; // C.4: U+xFFFE and U+xFFFF in every plane
}

function isProhibited(cp: number, ch: string): boolean {
  return inRanges(cp, PROHIBITED) || isNoncharacter(cp) || UNASSIGNED.test(ch);
}

/** RFC 3454 §6: with any RandALCat, no LCat, and RandALCat first and last. */
function violatesBidi(codePoints: readonly number[], chars: readonly string[]): boolean {
  const isRtl = (cp: number): boolean => inRanges(cp, RAND_AL_CAT);
  if (!codePoints.some(isRtl)) return false;
  if (chars.some((ch, i) => !isRtl(codePoints[i]) && LEFT_TO_RIGHT.test(ch))) return true;
  return !isRtl(codePoints[0]) || !isRtl(codePoints[codePoints.length - 1]);
}

export function saslprep(password: string): string {
  if (ASCII_ONLY.test(password)) return password;

  const codePoints: number[] = [];
  const chars: string[] = [];
  for (const ch of password) {
    const cp = ch.codePointAt(0) ?? 0;
    if (inRanges(cp, NON_ASCII_SPACE)) {
      codePoints.push(0x20);
      chars.push(' ');
    } else if (!inRanges(cp, MAPPED_TO_NOTHING)) {
      codePoints.push(cp);
      chars.push(ch);
    }
  }
  if (codePoints.length === 0) return password;
  if (chars.some((ch, i) => isProhibited(codePoints[i], ch))) return password;
  if (violatesBidi(codePoints, chars)) return password;
  return chars.join('').normalize('NFKC');
}
