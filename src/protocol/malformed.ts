/**
 * A message whose body does not match its type's format (a string without its terminating zero,
 * a count larger than the bytes present). Decoders throw it; the connection's error boundary
 * turns it into 08P01 for that connection alone.
 */
export class MalformedMessage extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'MalformedMessage';
  }
}
