/**
 * Signatures in use, so that clients with the same parameters (the usual case) share one string rather than each
 * keeping a copy of its own (a couple of hundred bytes per client). Bounded: emptied when full, after which a
 * signature is shared again from its next use (clients whose values are all their own just keep their own).
 */
const SIGNATURES = new Map<string, string>();
const MAX_SIGNATURES = 1024;

function sharedSignature(text: string): string {
  const known = SIGNATURES.get(text);
  if (known !== undefined) return known;
  if (SIGNATURES.size >= MAX_SIGNATURES) SIGNATURES.clear();
  SIGNATURES.set(text, text);
  return text;
}

/**
 * Parameter values (name → value) with a cheap identity for "same contents": `signature` is a
 * string built only when the contents changed since it was last asked for. A server connection
 * remembers the signature of the client parameters it was last brought in line with, so handing
 * it to a client with the same settings (the usual case: one application, one set of startup
 * parameters) skips comparing every parameter on each transaction.
 */
export class ParamMap extends Map<string, string> {
  /** Bumped on every change. */
  version = 0;
  private signed = -1;
  private text = '';

  override set(name: string, value: string): this {
    if (super.get(name) !== value) this.version++;
    return super.set(name, value);
  }

  override delete(name: string): boolean {
    const deleted = super.delete(name);
    if (deleted) this.version++;
    return deleted;
  }

  override clear(): void {
    if (this.size > 0) this.version++;
    super.clear();
  }

  get signature(): string {
    if (this.signed !== this.version) {
      let text = '';
      for (const [name, value] of this) text += `${name.length}:${name}${value.length}:${value}`; // length-prefixed: unambiguous
      this.text = sharedSignature(text);
      this.signed = this.version;
    }
    return this.text;
  }
}
